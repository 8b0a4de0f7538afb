package metrics

import "github.com/prometheus/client_golang/prometheus"

// ListenerMetrics records one listener's open downstream connections
// (rampart_active_connections). A nil *ListenerMetrics records nothing.
type ListenerMetrics struct {
	active prometheus.Gauge
}

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
	m.listeners[name] = l
	return l
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
		}
	}
}
