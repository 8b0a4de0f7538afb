package metrics_test

import (
	"fmt"
	"time"

	"github.com/rampart-proxy/rampart/metrics"
)

// The proxy resolves handles when it builds a snapshot, records into them
// per request, and retains what the new snapshot uses after the swap.
func Example() {
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, "v1.0.0")
	if err != nil {
		panic(err)
	}

	// Snapshot build: one handle per route and target.
	route := m.Route("api")
	target := m.Target("api", "10.0.0.1:8080")

	// Per request: no lock, no allocation.
	target.Observe(200)
	route.Observe(200, 3*time.Millisecond)

	// After the swap: drop the series of what the new snapshot lost.
	m.RetainRoutes([]string{"api"})
	m.RetainTargets([]metrics.TargetKey{{Upstream: "api", Target: "10.0.0.1:8080"}})
	m.ReloadSucceeded()

	// Metrics off: a nil *Metrics hands out nil handles that do nothing.
	var off *metrics.Metrics
	off.Route("api").Observe(200, time.Millisecond)

	n, _ := reg.Gather()
	fmt.Println(len(n) > 0)
	// Output: true
}
