package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestAccessDenied: refusals counted by route and reason, every reason's
// series present from the route's first use, and a route's series gone
// when a reload drops the route.
func TestAccessDenied(t *testing.T) {
	m, _ := newTest(t)
	a := m.Access("admin")
	if m.Access("admin") != a {
		t.Fatal("Access returned another handle for the same route")
	}
	a.Denied(DeniedDenyList)
	a.Denied(DeniedDenyList)
	a.Denied(DeniedCORSPreflight)
	a.Denied(deniedReasons) // out of range: ignored
	var none *AccessMetrics
	none.Denied(DeniedNotAllowed) // a nil handle records nothing
	for _, tt := range []struct {
		reason string
		want   float64
	}{{"deny_list", 2}, {"not_allowed", 0}, {"cors_preflight", 1}} {
		if got := testutil.ToFloat64(m.accessDenied.WithLabelValues("admin", tt.reason)); got != tt.want {
			t.Errorf("reason %s: got %v; want %v", tt.reason, got, tt.want)
		}
	}
	m.Access("api")
	m.RetainRoutes([]string{"api"})
	if got, want := testutil.CollectAndCount(m.accessDenied), int(deniedReasons); got != want {
		t.Errorf("after the reload: got %d series; want %d (the api route's)", got, want)
	}
}
