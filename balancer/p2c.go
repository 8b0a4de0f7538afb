package balancer

import "time"

// p2c is the power of two random choices: of two distinct targets drawn at
// random it picks the one with the lower load, where load is
// (in-flight + 1) * latency EWMA / weight. It avoids a slow or busy target
// without the herding of a strict least-loaded choice.
type p2c struct {
	targets []*Target
	rnd     Rand
}

func newP2C(ts []*Target, rnd Rand) *p2c { return &p2c{targets: ts, rnd: rnd} }

func (a *p2c) pick(_ Request, f filter) *Target {
	n := len(a.targets)
	if n == 1 {
		return scan(a.targets, 0, &f)
	}
	x := a.rnd.Uint64()
	i := below(x<<32, n) // the low half of x
	j := below(x, n-1)   // the high half dominates
	if j >= i {
		j++
	}
	ti, tj := a.targets[i], a.targets[j]
	oi, oj := f.ok(ti), f.ok(tj)
	switch {
	case oi && oj:
		if load(tj) < load(ti) {
			return tj
		}
		return ti
	case oi:
		return ti
	case oj:
		return tj
	}
	return scan(a.targets, i, &f)
}

// load is t's p2c score; lower is better. A target without latency samples
// counts 1ns, so it is tried soon and gets a sample.
func load(t *Target) float64 {
	l := max(t.State.ewma.Load(), 1)
	return float64(t.State.Inflight()+1) * float64(l) / float64(weight(t))
}

// ewmaShift makes the latency EWMA weigh a new sample 1/8.
const ewmaShift = 3

// ObserveLatency records the time a request to the target took (to its
// response headers, say) in the target's latency EWMA, which p2c weighs.
// It is lock-free: a CAS loop on one word.
func (s *State) ObserveLatency(d time.Duration) {
	v := max(int64(d), 1)
	for {
		old := s.ewma.Load()
		nv := v
		if old != 0 {
			nv = max(old+(v-old)>>ewmaShift, 1)
		}
		if s.ewma.CompareAndSwap(old, nv) {
			return
		}
	}
}

// Latency returns the target's latency EWMA; 0 before the first sample.
func (s *State) Latency() time.Duration { return time.Duration(s.ewma.Load()) }
