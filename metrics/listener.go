package metrics

import "github.com/prometheus/client_golang/prometheus"

// ListenerMetrics records one listener's open downstream connections
// (rampart_active_connections). A nil *ListenerMetrics records nothing.
type ListenerMetrics struct {
	active   prometheus.Gauge
	refused  [refuseReasons]prometheus.Counter
	timeout  [timeoutKinds]prometheus.Counter
	requests [protocols]prometheus.Counter
}

// Reasons for refusing a connection at accept, and kinds of timeouts, as
// recorded by Refused and TimedOut.
const (
	RefusedMaxConnections = iota
	RefusedMaxConnectionsPerIP
	RefusedShutdown
	// RefusedProxyUntrusted: a peer not in proxy_protocol.trusted;
	// RefusedProxyHeader: a missing, malformed or late PROXY header.
	RefusedProxyUntrusted
	RefusedProxyHeader
	refuseReasons
)

const (
	TimeoutHeader = iota
	TimeoutBody
	TimeoutWrite
	// TimeoutBodyStall and TimeoutSendStall count clients that made no
	// progress for body_timeout (sending the body) or send_timeout
	// (taking the response).
	TimeoutBodyStall
	TimeoutSendStall
	timeoutKinds
)

// Protocols of rampart_requests_by_protocol_total, as recorded by Request.
const (
	ProtocolHTTP1 = iota // HTTP/1.0 and HTTP/1.1
	ProtocolHTTP2        // HTTP/2, over TLS or in cleartext
	protocols
)

var (
	refuseNames = [refuseReasons]string{"max_connections", "max_connections_per_ip", "shutdown",
		"proxy_protocol_untrusted", "proxy_protocol_header"}
	timeoutNames  = [timeoutKinds]string{"header", "body", "write", "body_stall", "send_stall"}
	protocolNames = [protocols]string{"HTTP/1.1", "HTTP/2.0"} // as the access log writes them
)

// Listener returns the handle of the listener name, creating it on first
// use.
func (m *Metrics) Listener(name string) *ListenerMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.listeners[name]; l != nil {
		return l
	}
	l := &ListenerMetrics{active: m.activeConns.WithLabelValues(name)}
	for i, r := range refuseNames {
		l.refused[i] = m.connsRefused.WithLabelValues(name, r)
	}
	for i, k := range timeoutNames {
		l.timeout[i] = m.timeouts.WithLabelValues(name, k)
	}
	for i, p := range protocolNames {
		l.requests[i] = m.protoRequests.WithLabelValues(name, p)
	}
	m.listeners[name] = l
	return l
}

// Refused counts a connection refused at accept for reason (Refused*).
func (l *ListenerMetrics) Refused(reason int) {
	if l != nil && reason >= 0 && reason < refuseReasons {
		l.refused[reason].Inc()
	}
}

// TimedOut counts a request cut by a timeout of kind (Timeout*).
func (l *ListenerMetrics) TimedOut(kind int) {
	if l != nil && kind >= 0 && kind < timeoutKinds {
		l.timeout[kind].Inc()
	}
}

// Request counts a request that reached the pipeline by protocol
// (Protocol*).
func (l *ListenerMetrics) Request(protocol int) {
	if l != nil && protocol >= 0 && protocol < protocols {
		l.requests[protocol].Inc()
	}
}

// Inc counts a connection accepted.
func (l *ListenerMetrics) Inc() {
	if l != nil {
		l.active.Inc()
	}
}

// Dec counts a connection closed.
func (l *ListenerMetrics) Dec() {
	if l != nil {
		l.active.Dec()
	}
}

// RetainListeners deletes the series of every listener not in names and
// retires its handle. Connections of a retired listener that are still
// open count into its detached gauge.
func (m *Metrics) RetainListeners(names []string) {
	if m == nil {
		return
	}
	keep := setOf(names)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.listeners {
		if _, ok := keep[name]; !ok {
			delete(m.listeners, name)
			m.activeConns.DeleteLabelValues(name)
			for _, r := range refuseNames {
				m.connsRefused.DeleteLabelValues(name, r)
			}
			for _, k := range timeoutNames {
				m.timeouts.DeleteLabelValues(name, k)
			}
			for _, p := range protocolNames {
				m.protoRequests.DeleteLabelValues(name, p)
			}
		}
	}
}
