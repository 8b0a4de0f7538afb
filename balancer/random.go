package balancer

import "math/bits"

// random picks a target at random, in proportion to its weight.
type random struct {
	targets []*Target
	weights cumWeights
	rnd     Rand
}

func newRandom(ts []*Target, rnd Rand) *random {
	return &random{targets: ts, weights: newCumWeights(ts), rnd: rnd}
}

func (a *random) pick(_ Request, f filter) *Target {
	i := a.weights.index(a.rnd.Uint64())
	if t := a.targets[i]; f.ok(t) {
		return t
	}
	return scan(a.targets, i, &f)
}

// cumWeights maps a uniform 64-bit number to a target position, each with a
// probability proportional to its weight.
type cumWeights struct {
	cum     []uint64 // cum[i] is the sum of the weights of targets 0..i
	uniform bool     // all weights are equal: no search needed
}

func newCumWeights(ts []*Target) cumWeights {
	c := cumWeights{cum: make([]uint64, len(ts)), uniform: true}
	var total uint64
	for i, t := range ts {
		total += uint64(weight(t))
		c.cum[i] = total
		c.uniform = c.uniform && weight(t) == weight(ts[0])
	}
	return c
}

// index returns the position that x falls on.
func (c *cumWeights) index(x uint64) int {
	if c.uniform {
		return below(x, len(c.cum))
	}
	r, _ := bits.Mul64(x, c.cum[len(c.cum)-1]) // uniform in [0, total)
	lo, hi := 0, len(c.cum)-1
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.cum[m] > r {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}
