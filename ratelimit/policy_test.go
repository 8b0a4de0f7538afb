package ratelimit

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// t0 is an arbitrary start for injected clocks.
var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func mustPolicy(t testing.TB, name string, n int64, per time.Duration, burst int) Policy {
	t.Helper()
	p, err := NewPolicy(name, &config.RateLimit{Rate: config.Rate{N: n, Per: per}, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name     string
		rate     config.Rate
		burst    int
		interval time.Duration
		err      bool
	}{
		{"100/s", config.Rate{N: 100, Per: time.Second}, 200, 10 * time.Millisecond, false},
		{"3/s rounds down to the µs", config.Rate{N: 3, Per: time.Second}, 3, 333333 * time.Microsecond, false},
		{"1/h", config.Rate{N: 1, Per: time.Hour}, 1, time.Hour, false},
		{"1000000/s", config.Rate{N: 1000000, Per: time.Second}, 1, time.Microsecond, false},
		{"above 1000000/s", config.Rate{N: 1000001, Per: time.Second}, 1, 0, true},
		{"zero rate", config.Rate{}, 1, 0, true},
		{"zero burst", config.Rate{N: 1, Per: time.Second}, 0, 0, true},
		{"burst spanning centuries", config.Rate{N: 1, Per: time.Hour}, 1 << 30, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPolicy("p", &config.RateLimit{Rate: tt.rate, Burst: tt.burst})
			if tt.err {
				if !errors.Is(err, ErrUnsupportedRate) {
					t.Fatalf("err = %v; want ErrUnsupportedRate", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Interval() != tt.interval || p.Burst() != int64(tt.burst) {
				t.Errorf("interval, burst = %v, %d; want %v, %d", p.Interval(), p.Burst(), tt.interval, tt.burst)
			}
		})
	}
}

// step is one request of an exact scenario: at is the injected time after
// t0, the rest the expected decision.
type step struct {
	at         time.Duration
	allowed    bool
	remaining  int64
	retryAfter time.Duration
	reset      time.Duration
}

// burstThenRefill is 10/s (one per 100 ms) with a burst of 3.
var burstThenRefill = []step{
	{0, true, 2, 0, 100 * time.Millisecond},
	{0, true, 1, 0, 200 * time.Millisecond},
	{0, true, 0, 100 * time.Millisecond, 300 * time.Millisecond},
	{0, false, 0, 100 * time.Millisecond, 300 * time.Millisecond},
	{50 * time.Millisecond, false, 0, 50 * time.Millisecond, 250 * time.Millisecond},
	{99999 * time.Microsecond, false, 0, time.Microsecond, 200001 * time.Microsecond},
	{100 * time.Millisecond, true, 0, 100 * time.Millisecond, 300 * time.Millisecond},
	{100 * time.Millisecond, false, 0, 100 * time.Millisecond, 300 * time.Millisecond},
	{350 * time.Millisecond, true, 1, 0, 150 * time.Millisecond},
	{360 * time.Millisecond, true, 0, 40 * time.Millisecond, 240 * time.Millisecond},
	{360 * time.Millisecond, false, 0, 40 * time.Millisecond, 240 * time.Millisecond},
	{time.Second, true, 2, 0, 100 * time.Millisecond}, // idle: a full bucket again
	{time.Hour, true, 2, 0, 100 * time.Millisecond},
}

// runSteps plays steps against lim on key, with the injected clock.
func runSteps(t *testing.T, lim Limiter, key string, steps []step) {
	t.Helper()
	for i, s := range steps {
		d, err := lim.Allow(context.Background(), []byte(key), t0.Add(s.at))
		if err != nil {
			t.Fatalf("step %d at %v: %v", i, s.at, err)
		}
		got := step{s.at, d.Allowed, d.Remaining, d.RetryAfter, d.Reset}
		if got != s {
			t.Errorf("step %d at %v: got allowed=%v remaining=%d retryAfter=%v reset=%v; want %v %d %v %v",
				i, s.at, got.allowed, got.remaining, got.retryAfter, got.reset, s.allowed, s.remaining, s.retryAfter, s.reset)
		}
		if d.Limit != 3 {
			t.Errorf("step %d: limit = %d; want 3", i, d.Limit)
		}
	}
}

func TestMemoryBurstThenRefill(t *testing.T) {
	runSteps(t, NewMemory(mustPolicy(t, "p", 10, time.Second, 3), 0), "k", burstThenRefill)
}

// TestGCRAIsTokenBucket compares GCRA with a token bucket of burst tokens
// refilled at the rate, over random arrivals.
func TestGCRAIsTokenBucket(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, pc := range []struct {
		n     int64
		per   time.Duration
		burst int
	}{{10, time.Second, 3}, {100, time.Second, 200}, {7, time.Minute, 1}, {3, time.Second, 5}} {
		p := mustPolicy(t, "p", pc.n, pc.per, pc.burst)
		m := NewMemory(p, 0)
		// The bucket counts credit in µs: a token is worth one interval.
		credit, last := p.tolerance, int64(0)
		now := int64(0)
		allowed := 0
		for i := range 20000 {
			now += rnd.Int64N(3 * p.interval / 2) // a mean of 3/4 interval: the bucket drains
			credit = min(p.tolerance, credit+now-last)
			last = now
			want := credit >= p.interval
			if want {
				credit -= p.interval
				allowed++
			}
			d, _ := m.Allow(context.Background(), []byte("k"), t0.Add(time.Duration(now)*time.Microsecond))
			if d.Allowed != want || d.Remaining != credit/p.interval {
				t.Fatalf("%d/%v burst %d, request %d: allowed=%v remaining=%d; token bucket says %v %d",
					pc.n, pc.per, pc.burst, i, d.Allowed, d.Remaining, want, credit/p.interval)
			}
		}
		if allowed == 0 || allowed == 20000 {
			t.Errorf("%d/%v: allowed %d of 20000: the scenario tests nothing", pc.n, pc.per, allowed)
		}
	}
}

// TestExactCount: a minute of a client sending 10 requests a second against
// 60/m with a burst of 10 passes exactly 10 + 59 = 69 (the burst, then one
// per second; the request at 60 s is outside the minute).
func TestExactCount(t *testing.T) {
	m := NewMemory(mustPolicy(t, "p", 60, time.Minute, 10), 0)
	allowed := 0
	for at := time.Duration(0); at < time.Minute; at += 100 * time.Millisecond {
		if d, _ := m.Allow(context.Background(), []byte("k"), t0.Add(at)); d.Allowed {
			allowed++
		}
	}
	if allowed != 69 {
		t.Errorf("allowed %d in a minute; want 69", allowed)
	}
}
