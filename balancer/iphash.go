package balancer

// ipHashRetries is how many rehashes ip_hash tries when a client's target
// is unusable, before scanning the targets in order (nginx tries 20).
const ipHashRetries = 20

// ipHash maps a client IP to a target, in proportion to weights, so that a
// client keeps its target while that target is usable. Unlike
// consistent_hash, adding or removing a target remaps most clients; a
// target that is merely unusable moves only its own clients.
type ipHash struct {
	targets []*Target
	weights cumWeights
}

func newIPHash(ts []*Target) *ipHash { return &ipHash{targets: ts, weights: newCumWeights(ts)} }

func (a *ipHash) pick(r Request, f filter) *Target {
	h := hashAddr(r.ClientIP)
	i := a.weights.index(h)
	for k := uint64(1); ; k++ {
		if t := a.targets[i]; f.ok(t) {
			return t
		}
		if k > ipHashRetries {
			return scan(a.targets, i, &f)
		}
		h = mix64(h + k)
		i = a.weights.index(h)
	}
}
