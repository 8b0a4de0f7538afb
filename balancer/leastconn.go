package balancer

// leastConn picks the target with the fewest requests in flight per unit of
// weight (nginx's least_conn); ties are broken at random, in proportion to
// weight, so idle targets share the load evenly.
type leastConn struct {
	targets []*Target
	rnd     Rand
}

func newLeastConn(ts []*Target, rnd Rand) *leastConn { return &leastConn{targets: ts, rnd: rnd} }

func (a *leastConn) pick(_ Request, f filter) *Target {
	var best *Target
	var bestC, bestW, tieW int64
	var x uint64 // random bits for ties; drawn on the first tie
	for _, t := range a.targets {
		if !f.ok(t) {
			continue
		}
		c, w := t.State.Inflight(), int64(weight(t))
		switch {
		case best == nil || c*bestW < bestC*w:
			best, bestC, bestW, tieW = t, c, w, w
		case c*bestW == bestC*w:
			// Reservoir sampling: the k-th tie replaces the choice with
			// probability w / (sum of the ties' weights).
			if x == 0 {
				x = a.rnd.Uint64() | 1
			} else {
				x = mix64(x)
			}
			tieW += w
			if int64(below(x, int(tieW))) < w {
				best, bestC, bestW = t, c, w
			}
		}
	}
	return best
}
