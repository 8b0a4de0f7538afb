package balancer

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

const ejection = 30 * time.Second

func passiveUp(maxFailures, percent int) *config.Upstream {
	return &config.Upstream{Passive: &config.Passive{
		MaxFailures:        maxFailures,
		Ejection:           config.Duration(ejection),
		MaxEjection:        config.Duration(4 * ejection),
		MaxEjectionPercent: percent,
	}}
}

// fail reports n failures of t at the clock's time and returns whether the
// last one ejected it.
func fail(t *Target, clk *fakeClock, n int) bool {
	ejected := false
	for range n {
		ejected = t.ReportFailure(clk.Now())
	}
	return ejected
}

func TestPassiveEjectsAfterMaxFailures(t *testing.T) {
	ts := targets(1, 1, 1, 1)
	clk := newClock()
	p := pool(t, config.BalancerRoundRobin, ts, passiveUp(3, 50), clk)
	if fail(ts[0], clk, 2) {
		t.Fatal("ejected after 2 failures; want 3")
	}
	ts[0].ReportSuccess() // ends the run
	if fail(ts[0], clk, 2) {
		t.Fatal("ejected after a success and 2 failures; want 3 consecutive")
	}
	if !fail(ts[0], clk, 1) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	if !ts[0].State.Ejected(clk.Now()) || ts[0].State.Ejections() != 1 {
		t.Errorf("Ejected = %v, Ejections = %d; want true, 1", ts[0].State.Ejected(clk.Now()), ts[0].State.Ejections())
	}
	for i := range 30 {
		if got := p.Pick(-1); got.Index == 0 {
			t.Fatalf("pick %d: ejected target 0", i)
		}
	}
	clk.Advance(ejection - time.Nanosecond)
	if got := count(t, p, 30, nil); got[0] != 0 {
		t.Fatalf("just before the ejection ends: counts %v; want none for target 0", got)
	}
	clk.Advance(time.Nanosecond)
	if got := count(t, p, 40, nil); got[0] != 10 {
		t.Errorf("after the ejection: counts %v; want target 0 back in turn", got)
	}
}

func TestPassiveDoublingAndCap(t *testing.T) {
	ts := targets(1, 1)
	clk := newClock()
	pool(t, config.BalancerRoundRobin, ts, passiveUp(1, 50), clk)
	s := ts[0].State
	// Each ejection starting within one ejection length of the previous
	// one's end doubles, up to MaxEjection (4x).
	for i, want := range []time.Duration{ejection, 2 * ejection, 4 * ejection, 4 * ejection} {
		if !fail(ts[0], clk, 1) {
			t.Fatalf("ejection %d: not ejected", i)
		}
		if got := time.Duration(s.until.Load() - clk.Now().UnixNano()); got != want {
			t.Errorf("ejection %d: lasts %v; want %v", i, got, want)
		}
		if fail(ts[0], clk, 1) {
			t.Fatalf("ejection %d: ejected again while out", i)
		}
		clk.Advance(want + time.Second) // back in, and fails soon after
	}
	// Staying in for as long as it was last out starts over.
	clk.Advance(4 * ejection)
	fail(ts[0], clk, 1)
	if got := time.Duration(s.until.Load() - clk.Now().UnixNano()); got != ejection {
		t.Errorf("after a quiet period: lasts %v; want %v", got, ejection)
	}
	if got := s.Ejections(); got != 5 {
		t.Errorf("Ejections = %d; want 5", got)
	}
}

func TestPassiveMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		percent   int
		wantOut   int
		wantPicks bool // targets left in: picks never return an ejected one
	}{
		{"half of 4", 4, 50, 2, true},
		{"half of 5 rounds down", 5, 50, 2, true},
		{"at least one", 2, 10, 1, true},
		{"all", 3, 100, 3, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := targets(make([]int, tt.n)...)
			clk := newClock()
			p := pool(t, config.BalancerRoundRobin, ts, passiveUp(1, tt.percent), clk)
			out := 0
			for _, tg := range ts {
				if fail(tg, clk, 1) {
					out++
				}
			}
			if out != tt.wantOut || p.ejectedCount(clk.Now().UnixNano()) != tt.wantOut {
				t.Errorf("ejected %d; want %d", out, tt.wantOut)
			}
			if tt.wantPicks {
				for range 20 {
					if got := p.Pick(-1); got.State.Ejected(clk.Now()) {
						t.Fatalf("picked ejected target %d", got.Index)
					}
				}
			}
		})
	}
}

func TestPassivePanicMode(t *testing.T) {
	ts := targets(1, 1, 1)
	clk := newClock()
	p := pool(t, config.BalancerRoundRobin, ts, passiveUp(1, 100), clk)
	for _, tg := range ts {
		fail(tg, clk, 1)
	}
	// Every target is ejected: picks fall back to them all.
	if got := count(t, p, 30, nil); !equal(got, []int{10, 10, 10}) {
		t.Errorf("all ejected: counts %v; want [10 10 10] (panic mode)", got)
	}
	// Panic mode still skips what active checks marked down, and tries.
	ts[1].State.SetHealthy(false)
	for i := range 20 {
		if got := p.PickFor(Request{Tried: Tried(2)}); got == nil || got.Index != 0 {
			t.Fatalf("pick %d: %v; want target 0 (1 down, 2 tried)", i, got)
		}
	}
	// Down by active checks is not panic: nil.
	ts[0].State.SetHealthy(false)
	ts[2].State.SetHealthy(false)
	if got := p.Pick(-1); got != nil {
		t.Errorf("every target actively down: picked %d; want nil", got.Index)
	}
	// One target re-admitted ends the panic.
	for _, tg := range ts {
		tg.State.SetHealthy(true)
	}
	clk.Advance(ejection)
	ts[1].State.until.Store(clk.Now().Add(time.Hour).UnixNano())
	ts[2].State.until.Store(clk.Now().Add(time.Hour).UnixNano())
	if got := count(t, p, 10, nil); got[0] != 10 {
		t.Errorf("one target back: counts %v; want all on target 0", got)
	}
}

func TestPassiveHooksAndLog(t *testing.T) {
	var buf bytes.Buffer
	var hooked []string
	ts := targets(1, 1)
	clk := newClock()
	_, err := New("api", passiveUp(2, 50), ts, Options{
		Now:    clk.Now,
		Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		OnEject: func(upstream, target string, d time.Duration) {
			hooked = append(hooked, upstream+" "+target+" "+d.String())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	fail(ts[1], clk, 5) // ejects once; the failures after change nothing
	if want := "api " + addr(1) + " 30s"; len(hooked) != 1 || hooked[0] != want {
		t.Errorf("OnEject calls %q; want [%q]", hooked, want)
	}
	if n := strings.Count(buf.String(), "ejected"); n != 1 {
		t.Errorf("logged %d ejections; want 1:\n%s", n, buf.String())
	}
}

func TestPassiveOff(t *testing.T) {
	ts := targets(1)
	clk := newClock()
	pool(t, config.BalancerRoundRobin, ts, nil, clk)
	if fail(ts[0], clk, 100) || ts[0].State.Ejected(clk.Now()) {
		t.Error("ejected without passive checks")
	}
	// A target not built into a pool does nothing either.
	lone := &Target{State: &State{}}
	if lone.ReportFailure(clk.Now()) {
		t.Error("ejected a target outside any pool")
	}
}

func TestPassiveDefaults(t *testing.T) {
	got := passiveDefaults(&config.Passive{})
	want := config.Passive{
		MaxFailures:        config.DefaultPassiveMaxFailures,
		Ejection:           config.Duration(config.DefaultPassiveEjection),
		MaxEjection:        config.Duration(config.DefaultPassiveMaxEjection),
		MaxEjectionPercent: config.DefaultMaxEjectionPercent,
	}
	if *got != want {
		t.Errorf("passiveDefaults(zero) = %+v; want %+v", *got, want)
	}
}

func TestReportAllocs(t *testing.T) {
	ts := targets(1, 1)
	clk := newClock()
	pool(t, config.BalancerRoundRobin, ts, passiveUp(1000000, 50), clk)
	now := clk.Now()
	if n := testing.AllocsPerRun(100, func() {
		ts[0].ReportFailure(now)
		ts[0].ReportSuccess()
		ts[0].State.ObserveLatency(time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocations per report; want 0", n)
	}
}
