package balancer

import "sync/atomic"

// maxSchedule bounds a weighted schedule's length; larger weights are
// scaled down to fit, keeping their ratios to within 1/maxSchedule.
const maxSchedule = 1 << 14

// probeSlots is how many more schedule slots (or Maglev rehashes) a pick
// tries when its first choice is unusable, before scanning the targets in
// order.
const probeSlots = 64

// weightedRoundRobin is nginx's smooth weighted round robin, computed once
// into a schedule: weights 3:1 give a a b a, a a b a, ... and never a burst
// of one target. A pick is one atomic add and an index.
type weightedRoundRobin struct {
	targets  []*Target
	schedule []int32 // target positions, one period of the smooth sequence
	next     atomic.Uint64
}

func newWeightedRoundRobin(ts []*Target) *weightedRoundRobin {
	return &weightedRoundRobin{targets: ts, schedule: smoothSchedule(ts)}
}

// smoothSchedule returns one period of the smooth weighted sequence: at each
// step every target's current weight grows by its weight, the largest (the
// first on ties) is chosen, and the total is taken from it.
func smoothSchedule(ts []*Target) []int32 {
	w := make([]int, len(ts))
	g, total := 0, 0
	for i, t := range ts {
		w[i] = weight(t)
		g = gcd(g, w[i])
	}
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	if total > maxSchedule {
		scaled := 0
		for i := range w {
			w[i] = max(w[i]*maxSchedule/total, 1)
			scaled += w[i]
		}
		total = scaled
	}
	cur := make([]int, len(ts))
	s := make([]int32, total)
	for k := range s {
		best := 0
		for i := range cur {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		s[k] = int32(best)
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

func (a *weightedRoundRobin) pick(_ Request, f filter) *Target {
	n := uint64(len(a.schedule))
	k := (a.next.Add(1) - 1) % n
	probes := min(n, probeSlots)
	for range probes {
		if t := a.targets[a.schedule[k]]; f.ok(t) {
			return t
		}
		if k++; k == n {
			k = 0
		}
	}
	return scan(a.targets, int(a.schedule[k]), &f)
}
