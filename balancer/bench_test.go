package balancer

import (
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// BenchmarkPick measures one pick of each algorithm over 8 targets with
// mixed weights, latencies and in-flight counts; sticky is a pick whose
// cookie names a healthy target.
func BenchmarkPick(b *testing.B) {
	key := []byte("user-12345")
	for _, name := range append(append([]string(nil), config.Balancers...), "sticky") {
		b.Run(name, func(b *testing.B) {
			ts := targets(1, 2, 3, 1, 2, 3, 1, 2)
			for i, t := range ts {
				t.State.ObserveLatency(time.Duration(i+1) * time.Millisecond)
				for range i % 3 {
					t.State.Acquire()
				}
			}
			algo := name
			up := &config.Upstream{}
			if name == "sticky" {
				algo, up.Sticky = config.BalancerRoundRobin, &config.Sticky{Cookie: "s"}
			}
			up.Balancer = algo
			p, err := New("api", up, ts, Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			req := Request{ClientIP: ip(42), Key: key}
			if name == "sticky" {
				req.Sticky = []byte(p.StickyValue(5))
			}
			b.ReportAllocs()
			for b.Loop() {
				p.PickFor(req)
			}
		})
	}
}

// BenchmarkPickParallel measures picks from every P at once, where the
// shared cursors of the round robins contend.
func BenchmarkPickParallel(b *testing.B) {
	for _, name := range []string{config.BalancerRoundRobin, config.BalancerWeightedRoundRobin, config.BalancerP2C} {
		b.Run(name, func(b *testing.B) {
			p, err := New("api", &config.Upstream{Balancer: name}, targets(1, 2, 3, 1, 2, 3, 1, 2), Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.PickFor(Request{})
				}
			})
		})
	}
}
