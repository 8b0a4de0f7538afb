package balancer

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// quiet discards the logs of a test.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeClock is a manual clock for exact passive tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// newClock returns a clock at a fixed instant.
func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

// seeded returns a deterministic Rand (not safe for concurrent use).
func seeded(seed uint64) Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }

// targets returns fresh targets with the given weights, at addresses
// http://10.0.0.N:80 in a fresh registry.
func targets(weights ...int) []*Target {
	reg := NewRegistry()
	ts := make([]*Target, len(weights))
	for i, w := range weights {
		ts[i] = &Target{Index: i, Weight: w, State: reg.State(addr(i))}
	}
	return ts
}

func addr(i int) string { return "http://10.0.0." + strconv.Itoa(i+1) + ":80" }

// pool builds a pool of balancer b over ts with a seeded Rand and clk.
func pool(t testing.TB, b string, ts []*Target, up *config.Upstream, clk *fakeClock) *Pool {
	t.Helper()
	if up == nil {
		up = &config.Upstream{}
	}
	up.Balancer = b
	if clk == nil {
		clk = newClock()
	}
	p, err := New("api", up, ts, Options{Rand: seeded(1), Now: clk.Now, Logger: quiet, StickyKey: []byte("k")})
	if err != nil {
		t.Fatalf("New(%s): %v", b, err)
	}
	return p
}

// count picks n times with r and returns the picks per target position.
func count(t testing.TB, p *Pool, n int, r func(i int) Request) []int {
	t.Helper()
	got := make([]int, len(p.Targets))
	for i := range n {
		var req Request
		if r != nil {
			req = r(i)
		}
		tg := p.PickFor(req)
		if tg == nil {
			t.Fatalf("pick %d: nil", i)
		}
		got[tg.Index]++
	}
	return got
}

// within fails unless got is within tol (a fraction of want) of want.
func within(t *testing.T, what string, got, want int, tol float64) {
	t.Helper()
	if d := float64(got - want); d > tol*float64(want) || -d > tol*float64(want) {
		t.Errorf("%s: got %d; want %d ±%.0f%%", what, got, want, tol*100)
	}
}

func TestNewPoolRoundRobin(t *testing.T) {
	p := NewPool("api", targets(1, 1, 1))
	var seq []int
	for range 6 {
		seq = append(seq, p.Pick(-1).Index)
	}
	if want := []int{0, 1, 2, 0, 1, 2}; !equal(seq, want) {
		t.Errorf("picks %v; want %v", seq, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSkipsUnusable checks, for every algorithm, that a pick never returns
// a target that is down, or excluded, and returns nil when none is left.
func TestSkipsUnusable(t *testing.T) {
	for _, b := range config.Balancers {
		t.Run(b, func(t *testing.T) {
			ts := targets(1, 2, 3, 1)
			p := pool(t, b, ts, nil, nil)
			ts[1].State.SetHealthy(false)
			for i := range 500 {
				r := Request{ClientIP: ip(i), Key: []byte(strconv.Itoa(i)), Tried: Tried(2)}
				got := p.PickFor(r)
				if got == nil || got.Index == 1 || got.Index == 2 {
					t.Fatalf("pick %d: got %v; want target 0 or 3", i, got)
				}
			}
			ts[0].State.SetHealthy(false)
			ts[3].State.SetHealthy(false)
			if got := p.PickFor(Request{Tried: Tried(2)}); got != nil {
				t.Errorf("every target down or tried: got target %d; want nil", got.Index)
			}
			if got := p.Pick(-1); got == nil || got.Index != 2 {
				t.Errorf("only target 2 up: got %v; want target 2", got)
			}
		})
	}
}

func TestEmptyPool(t *testing.T) {
	for _, b := range config.Balancers {
		p := pool(t, b, nil, nil, nil)
		if got := p.PickFor(Request{Key: []byte("k")}); got != nil {
			t.Errorf("%s: empty pool picked %v", b, got)
		}
	}
}

func TestNewErrors(t *testing.T) {
	ts := targets(1, 1)
	tests := []struct {
		name string
		up   config.Upstream
		ts   []*Target
	}{
		{"unknown balancer", config.Upstream{Balancer: "fastest"}, ts},
		{"bad hash key", config.Upstream{Balancer: config.BalancerConsistentHash, HashKey: "header:"}, ts},
		{"index", config.Upstream{}, []*Target{{Index: 1, Weight: 1, State: &State{}}}},
	}
	for _, tt := range tests {
		if _, err := New("api", &tt.up, tt.ts, Options{}); err == nil {
			t.Errorf("%s: New succeeded; want an error", tt.name)
		}
	}
	p, err := New("api", &config.Upstream{}, ts, Options{})
	if err != nil || p.Balancer != config.BalancerRoundRobin {
		t.Errorf("empty balancer: got %v, %v; want round_robin", p, err)
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		in   string
		want HashKey
		err  bool
	}{
		{"", HashKey{Kind: KeyClientIP}, false},
		{"client_ip", HashKey{Kind: KeyClientIP}, false},
		{"path", HashKey{Kind: KeyPath}, false},
		{"header:X-User", HashKey{Kind: KeyHeader, Name: "X-User"}, false},
		{"cookie:sid", HashKey{Kind: KeyCookie, Name: "sid"}, false},
		{"query:u", HashKey{Kind: KeyQuery, Name: "u"}, false},
		{"query:", HashKey{}, true},
		{"host", HashKey{}, true},
	}
	for _, tt := range tests {
		got, err := ParseHashKey(tt.in)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("ParseHashKey(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestTried(t *testing.T) {
	for _, tt := range []struct {
		i    int
		want uint64
	}{{-1, 0}, {0, 1}, {5, 32}, {63, 1 << 63}, {64, 0}} {
		if got := Tried(tt.i); got != tt.want {
			t.Errorf("Tried(%d) = %d; want %d", tt.i, got, tt.want)
		}
	}
}

// ip returns a distinct IPv4 address for i.
func ip(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// TestPickAllocs checks that no pick allocates: each algorithm, with a
// down target, with a sticky cookie, and in panic mode.
func TestPickAllocs(t *testing.T) {
	key, cookie := []byte("user-42"), []byte("not-a-target")
	for _, b := range config.Balancers {
		t.Run(b, func(t *testing.T) {
			ts := targets(1, 2, 3, 1)
			clk := newClock()
			up := &config.Upstream{Sticky: &config.Sticky{Cookie: "s"}, Passive: &config.Passive{MaxFailures: 1, MaxEjectionPercent: 100}}
			p := pool(t, b, ts, up, clk)
			sticky := []byte(p.StickyValue(3))
			req := Request{ClientIP: ip(7), Key: key, Sticky: cookie}
			check := func(what string) {
				t.Helper()
				if n := testing.AllocsPerRun(100, func() { p.PickFor(req) }); n != 0 {
					t.Errorf("%s: %v allocations per pick; want 0", what, n)
				}
			}
			check("all up")
			ts[1].State.SetHealthy(false)
			check("one down")
			req.Sticky = sticky
			check("sticky")
			for _, tg := range ts {
				tg.ReportFailure(clk.Now())
			}
			check("panic")
		})
	}
}

// TestConcurrent races picks, reports and health changes (run with -race).
func TestConcurrent(t *testing.T) {
	for _, b := range config.Balancers {
		t.Run(b, func(t *testing.T) {
			ts := targets(1, 2, 3, 4)
			up := &config.Upstream{Balancer: b, Passive: &config.Passive{MaxFailures: 2, Ejection: config.Duration(time.Millisecond)}}
			p, err := New("api", up, ts, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			for g := range 4 {
				go func() {
					defer func() { done <- struct{}{} }()
					for i := range 2000 {
						tg := p.PickFor(Request{ClientIP: ip(i), Key: []byte{byte(i)}})
						if tg == nil {
							continue
						}
						tg.State.Acquire()
						if (i+g)%3 == 0 {
							tg.ReportFailure(time.Now())
						} else {
							tg.ReportSuccess()
						}
						tg.State.ObserveLatency(time.Duration(i))
						tg.State.Release()
						if i%100 == 0 {
							ts[g].State.SetHealthy(i%200 == 0)
						}
					}
				}()
			}
			for range 4 {
				<-done
			}
		})
	}
}
