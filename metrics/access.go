package metrics

import "github.com/prometheus/client_golang/prometheus"

// Reasons a request is refused by a route's access control, as recorded by
// AccessMetrics.Denied (rampart_access_denied_total).
const (
	DeniedDenyList      = iota // the client address is in deny
	DeniedNotAllowed           // allow is set and the client address is not in it
	DeniedCORSPreflight        // a CORS preflight the route's policy refuses
	deniedReasons
)

var deniedNames = [deniedReasons]string{"deny_list", "not_allowed", "cors_preflight"}

// AccessMetrics records the refusals of one route's access control. A nil
// *AccessMetrics records nothing.
type AccessMetrics struct {
	denied [deniedReasons]prometheus.Counter
}

func newAccessDenied() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "access_denied_total",
		Help: "Requests refused by a route's access control, by route and reason (deny_list, not_allowed: the IP lists, answered 403; cors_preflight: a CORS preflight the policy refuses, answered 403).",
	}, []string{"route", "reason"})
}

// Access returns the handle of the route name, creating it on first use.
// Call it when building a snapshot, not per request.
func (m *Metrics) Access(route string) *AccessMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a := m.access[route]; a != nil {
		return a
	}
	a := &AccessMetrics{}
	for i, r := range deniedNames {
		a.denied[i] = m.accessDenied.WithLabelValues(route, r)
	}
	m.access[route] = a
	return a
}

// Denied counts one refusal for reason (Denied*).
func (a *AccessMetrics) Denied(reason int) {
	if a != nil && reason >= 0 && reason < deniedReasons {
		a.denied[reason].Inc()
	}
}

// retainAccess deletes the series of every route not in keep; m.mu is
// held.
func (m *Metrics) retainAccess(keep map[string]struct{}) {
	for name := range m.access {
		if _, ok := keep[name]; !ok {
			delete(m.access, name)
			m.accessDenied.DeletePartialMatch(prometheus.Labels{"route": name})
		}
	}
}
