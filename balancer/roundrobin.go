package balancer

import "sync/atomic"

// roundRobin takes targets in turn, ignoring weights.
type roundRobin struct {
	targets []*Target
	next    atomic.Uint64
}

func newRoundRobin(ts []*Target) *roundRobin { return &roundRobin{targets: ts} }

func (a *roundRobin) pick(_ Request, f filter) *Target {
	n := uint64(len(a.targets))
	return scan(a.targets, int((a.next.Add(1)-1)%n), &f)
}
