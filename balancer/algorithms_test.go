package balancer

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

func TestRoundRobinDistribution(t *testing.T) {
	p := pool(t, config.BalancerRoundRobin, targets(1, 5, 1), nil, nil)
	got := count(t, p, 300, nil)
	if want := []int{100, 100, 100}; !equal(got, want) {
		t.Errorf("counts %v; want %v (weights ignored)", got, want)
	}
}

func TestWeightedRoundRobinSequence(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{"3:1", []int{3, 1}, "aabaaaba"},
		{"nginx 5:1:1", []int{5, 1, 1}, "aabacaaaabacaa"},
		{"gcd 6:2", []int{6, 2}, "aaba"},
		{"equal", []int{1, 1, 1}, "abcabc"},
		{"2:3", []int{2, 3}, "babab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pool(t, config.BalancerWeightedRoundRobin, targets(tt.weights...), nil, nil)
			var got []byte
			for range len(tt.want) {
				got = append(got, byte('a'+p.Pick(-1).Index))
			}
			if string(got) != tt.want {
				t.Errorf("sequence %s; want %s", got, tt.want)
			}
		})
	}
}

func TestWeightedRoundRobinDistribution(t *testing.T) {
	ts := targets(5, 3, 2)
	p := pool(t, config.BalancerWeightedRoundRobin, ts, nil, nil)
	if got, want := count(t, p, 1000, nil), []int{500, 300, 200}; !equal(got, want) {
		t.Errorf("counts %v; want %v", got, want)
	}
	// A down target's turns go to the others; they keep at least their
	// shares and nothing goes to the down one.
	ts[0].State.SetHealthy(false)
	got := count(t, p, 1000, nil)
	if got[0] != 0 || got[1] < 300 || got[2] < 200 || got[1]+got[2] != 1000 {
		t.Errorf("target 0 down: counts %v; want [0 >=300 >=200]", got)
	}
}

func TestWeightedScheduleScaled(t *testing.T) {
	s := smoothSchedule(targets(1_000_000, 999_999, 1))
	if len(s) > maxSchedule+3 {
		t.Fatalf("schedule length %d; want at most %d", len(s), maxSchedule+3)
	}
	n := make([]int, 3)
	for _, i := range s {
		n[i]++
	}
	if n[2] != 1 || n[0] < n[1] || n[0]-n[1] > 2 {
		t.Errorf("scaled shares %v; want about equal, and 1 for the smallest", n)
	}
}

func TestLeastConnPicksIdle(t *testing.T) {
	ts := targets(1, 1, 1)
	p := pool(t, config.BalancerLeastConn, ts, nil, nil)
	for i, n := range []int{3, 0, 2} {
		for range n {
			ts[i].State.Acquire()
		}
	}
	for i := range 100 {
		if got := p.Pick(-1); got.Index != 1 {
			t.Fatalf("pick %d: target %d; want idle target 1", i, got.Index)
		}
	}
	// Weighted: 4 in flight on weight 4 (1 per weight) beats 2 on weight 1.
	ws := targets(1, 4)
	wp := pool(t, config.BalancerLeastConn, ws, nil, nil)
	ws[0].State.Acquire()
	ws[0].State.Acquire()
	for range 4 {
		ws[1].State.Acquire()
	}
	if got := wp.Pick(-1); got.Index != 1 {
		t.Errorf("weighted: target %d; want target 1 (fewer per weight)", got.Index)
	}
}

func TestLeastConnTiesAtRandom(t *testing.T) {
	p := pool(t, config.BalancerLeastConn, targets(1, 1, 1, 2), nil, nil)
	got := count(t, p, 50_000, nil)
	// Ties go in proportion to weight: 1:1:1:2 of 50000, within 3%.
	for i, want := range []int{10_000, 10_000, 10_000, 20_000} {
		within(t, "target "+strconv.Itoa(i), got[i], want, 0.03)
	}
}

func TestRandomDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
	}{{"uniform", []int{1, 1, 1, 1}}, {"weighted", []int{1, 2, 3, 4}}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pool(t, config.BalancerRandom, targets(tt.weights...), nil, nil)
			const n = 100_000
			got := count(t, p, n, nil)
			total := 0
			for _, w := range tt.weights {
				total += w
			}
			// Seeded, so exact; the tolerance states what any seed gives
			// (3% is over 5 standard deviations at these counts).
			for i, w := range tt.weights {
				within(t, "target "+strconv.Itoa(i), got[i], n*w/total, 0.03)
			}
		})
	}
}

func TestP2CPrefersFast(t *testing.T) {
	ts := targets(1, 1, 1)
	p := pool(t, config.BalancerP2C, ts, nil, nil)
	for range 20 {
		ts[0].State.ObserveLatency(time.Millisecond)
		ts[1].State.ObserveLatency(50 * time.Millisecond)
		ts[2].State.ObserveLatency(time.Millisecond)
	}
	// Any two of three include a fast one: the slow target gets nothing
	// while the fast ones are idle.
	if got := count(t, p, 3000, nil); got[1] != 0 {
		t.Errorf("idle fast targets: counts %v; want none for slow target 1", got)
	}
	// With load on the fast targets (in flight, no release) the slow one
	// takes a share once they queue beyond 50x its load.
	got := make([]int, 3)
	for range 3000 {
		tg := p.Pick(-1)
		tg.State.Acquire()
		got[tg.Index]++
	}
	if got[1] == 0 || got[1]*10 > got[0]+got[2] {
		t.Errorf("loaded fast targets: counts %v; want slow target 1 to take a small share", got)
	}
}

func TestP2CDistribution(t *testing.T) {
	// Equal targets without samples: the first of the pair wins ties, so
	// the choice is uniform.
	p := pool(t, config.BalancerP2C, targets(1, 1, 1, 1, 1), nil, nil)
	got := count(t, p, 50_000, nil)
	for i := range got {
		within(t, "target "+strconv.Itoa(i), got[i], 10_000, 0.04)
	}
}

func TestObserveLatency(t *testing.T) {
	var s State
	if s.Latency() != 0 {
		t.Fatalf("initial latency %v; want 0", s.Latency())
	}
	s.ObserveLatency(80 * time.Millisecond)
	if got := s.Latency(); got != 80*time.Millisecond {
		t.Errorf("first sample: %v; want 80ms", got)
	}
	s.ObserveLatency(0)
	if got := s.Latency(); got != 70*time.Millisecond {
		t.Errorf("after a 0 sample: %v; want 70ms (1/8 weight)", got)
	}
}

func TestIPHashStable(t *testing.T) {
	ts := targets(1, 1, 1, 1)
	p := pool(t, config.BalancerIPHash, ts, nil, nil)
	const n = 40_000
	before := make([]int, n)
	got := make([]int, 4)
	for i := range n {
		a := p.PickFor(Request{ClientIP: ip(i)}).Index
		if b := p.PickFor(Request{ClientIP: ip(i)}).Index; a != b {
			t.Fatalf("client %v: target %d then %d; want the same", ip(i), a, b)
		}
		before[i] = a
		got[a]++
	}
	for i := range got {
		within(t, "target "+strconv.Itoa(i), got[i], n/4, 0.05)
	}
	// A target going down moves its own clients only.
	ts[2].State.SetHealthy(false)
	for i := range n {
		a := p.PickFor(Request{ClientIP: ip(i)}).Index
		if before[i] != 2 && a != before[i] {
			t.Fatalf("client %v moved from target %d to %d when target 2 went down", ip(i), before[i], a)
		}
	}
	// IPv4-mapped IPv6 is the same client.
	v4 := ip(77)
	if a, b := p.PickFor(Request{ClientIP: v4}), p.PickFor(Request{ClientIP: netip.AddrFrom16(v4.As16())}); a != b {
		t.Errorf("%v and its IPv4-mapped form: targets %d and %d; want one", v4, a.Index, b.Index)
	}
}

// keys returns n distinct hash keys.
func keys(n int) [][]byte {
	k := make([][]byte, n)
	for i := range k {
		k[i] = []byte("user-" + strconv.Itoa(i))
	}
	return k
}

// TestMaglevRemap checks the consistent hashing property: removing one of
// N targets remaps about 1/N of the keys: those of the removed target, and
// at most 1% of the others (Maglev is not perfectly minimal).
func TestMaglevRemap(t *testing.T) {
	const nKeys = 100_000
	ks := keys(nKeys)
	for n := 5; n <= 10; n++ {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			reg := NewRegistry()
			all := make([]string, n)
			for i := range all {
				all[i] = addr(i)
			}
			build := func(addrs []string) *Pool {
				ts := make([]*Target, len(addrs))
				for i, a := range addrs {
					ts[i] = &Target{Index: i, Weight: 1, State: reg.State(a)}
				}
				return pool(t, config.BalancerConsistentHash, ts, &config.Upstream{HashKey: "header:X-User"}, nil)
			}
			full := build(all)
			removed := n / 2
			rest := append(append([]string(nil), all[:removed]...), all[removed+1:]...)
			less := build(rest)
			share := make([]int, n)
			onRemoved, moved := 0, 0
			for _, k := range ks {
				a := full.PickFor(Request{Key: k}).State.Addr
				b := less.PickFor(Request{Key: k}).State.Addr
				share[full.PickFor(Request{Key: k}).Index]++
				switch {
				case a == all[removed]:
					onRemoved++
				case a != b:
					moved++
				}
			}
			for i := range share {
				within(t, "share of target "+strconv.Itoa(i), share[i], nKeys/n, 0.05)
			}
			within(t, "keys of the removed target", onRemoved, nKeys/n, 0.05)
			if moved > nKeys/100 {
				t.Errorf("%d keys of remaining targets moved; want at most %d (1%%)", moved, nKeys/100)
			}
			t.Logf("N=%d: %.2f%% of keys remapped (1/N = %.2f%%), of which %d from remaining targets",
				n, 100*float64(onRemoved+moved)/nKeys, 100/float64(n), moved)
		})
	}
}

func TestMaglevWeightsAndDown(t *testing.T) {
	ts := targets(1, 2, 1)
	p := pool(t, config.BalancerConsistentHash, ts, nil, nil)
	ks := keys(40_000)
	before := make([]int, len(ks))
	got := make([]int, 3)
	for i, k := range ks {
		before[i] = p.PickFor(Request{Key: k}).Index
		got[before[i]]++
	}
	for i, want := range []int{10_000, 20_000, 10_000} {
		within(t, "target "+strconv.Itoa(i), got[i], want, 0.05)
	}
	ts[1].State.SetHealthy(false)
	got = make([]int, 3)
	for i, k := range ks {
		a := p.PickFor(Request{Key: k}).Index
		if before[i] != 1 && a != before[i] {
			t.Fatalf("key %s moved from target %d to %d when target 1 went down", k, before[i], a)
		}
		got[a]++
	}
	// Target 1's keys spread over the others evenly.
	within(t, "target 0 with 1 down", got[0], 20_000, 0.05)
	within(t, "target 2 with 1 down", got[2], 20_000, 0.05)
}

func TestMaglevClientIPFallback(t *testing.T) {
	p := pool(t, config.BalancerConsistentHash, targets(1, 1, 1, 1, 1), nil, nil)
	for i := range 100 {
		a := p.PickFor(Request{ClientIP: ip(i)})
		b := p.PickFor(Request{ClientIP: ip(i), Key: []byte{}})
		if a != b {
			t.Fatalf("client %v: empty key picked %d, none %d; want the client IP's target", ip(i), b.Index, a.Index)
		}
	}
}

func TestNextPrime(t *testing.T) {
	for _, tt := range [][2]uint64{{0, 2}, {2, 2}, {90, 97}, {65537, 65537}, {70000, 70001}} {
		if got := nextPrime(tt[0]); got != tt[1] {
			t.Errorf("nextPrime(%d) = %d; want %d", tt[0], got, tt[1])
		}
	}
}
