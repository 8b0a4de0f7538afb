package metrics

import "github.com/prometheus/client_golang/prometheus"

// Values of the label "result" of rampart_auth_requests_total.
const (
	AuthOK          = "ok"          // let through
	AuthDenied      = "denied"      // no, bad or refused credentials: 401, or the service's answer
	AuthError       = "error"       // could not decide (service down, no keys, bcrypt busy): 5xx
	AuthRateLimited = "ratelimited" // too many failures from the client: 429 without checking
)

// newAuthRequests is rampart_auth_requests_total.
func newAuthRequests() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "auth_requests_total",
		Help: "Requests checked by an authentication policy, by policy and result (ok, denied, error, ratelimited).",
	}, []string{"policy", "result"})
}

// AuthMetrics records one authentication policy. A nil *AuthMetrics
// records nothing.
type AuthMetrics struct {
	ok, denied, errored, limited prometheus.Counter
}

// Auth returns the handle of the policy, creating it on first use.
func (m *Metrics) Auth(policy string) *AuthMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.auths[policy]; a != nil {
		return a
	}
	a := &AuthMetrics{
		ok:      m.authRequests.WithLabelValues(policy, AuthOK),
		denied:  m.authRequests.WithLabelValues(policy, AuthDenied),
		errored: m.authRequests.WithLabelValues(policy, AuthError),
		limited: m.authRequests.WithLabelValues(policy, AuthRateLimited),
	}
	m.auths[policy] = a
	return a
}

// Record counts one outcome (AuthOK, AuthDenied, AuthError,
// AuthRateLimited).
func (a *AuthMetrics) Record(result string) {
	if a == nil {
		return
	}
	switch result {
	case AuthOK:
		a.ok.Inc()
	case AuthDenied:
		a.denied.Inc()
	case AuthRateLimited:
		a.limited.Inc()
	default:
		a.errored.Inc()
	}
}
