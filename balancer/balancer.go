// Package balancer picks a target of an upstream pool for each request.
//
// A Pool is immutable configuration (its targets and algorithm) built once per
// config snapshot; the live state of a target (in-flight requests, health,
// latency, passive ejection) is held in a State that a Registry keys by target
// address, so that it survives a reload that keeps the target. Picks take no
// lock and allocate nothing: each algorithm (one file each) precomputes what
// it needs (a weighted schedule, a Maglev table) when the pool is built.
//
// A target is usable when active health checks (Checker) have not marked it
// down, passive outlier detection (Target.ReportFailure) has not ejected it,
// and the request has not already tried it. When no target is usable but some
// are only passively ejected, a pick falls back to those (panic mode, as in
// Envoy): a pool whose every target looks bad from live traffic alone is more
// likely suffering an outage than holding bad targets, and trying is better
// than answering 503 to everyone.
package balancer

import (
	"fmt"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// Rand is the source of randomness of random, least_conn (ties) and p2c. The
// pool calls it concurrently unless the caller knows better (a test).
type Rand interface {
	Uint64() uint64
}

// runtimeRand is the default Rand: math/rand/v2's global source, which is
// lock-free and safe for concurrent use.
type runtimeRand struct{}

func (runtimeRand) Uint64() uint64 { return rand.Uint64() }

// Options carry what a pool takes from outside its config. The zero value
// is ready to use.
type Options struct {
	// Rand is the randomness of the random algorithms. Nil: math/rand/v2's
	// global source. It must be safe for concurrent use unless picks are
	// not concurrent.
	Rand Rand
	// Now is the clock of passive ejection. Nil: time.Now.
	Now func() time.Time
	// StickyKey keys the HMAC that makes sticky cookie values. Nil: a random
	// key made once per process, so cookies do not survive a restart and
	// are not shared by several instances; set it for either.
	StickyKey []byte
	// Logger logs passive ejections. Nil: slog.Default().
	Logger *slog.Logger
	// OnEject, when set, is called once per passive ejection (a metrics
	// hook), with the target's address and the ejection's length.
	OnEject func(upstream, target string, d time.Duration)
}

// Request is what a pick may depend on. The proxy fills it per request on
// the stack; the slices may point into the request's buffers, as a pick does
// not keep them.
type Request struct {
	// ClientIP is the downstream's address: ip_hash hashes it, and so does
	// consistent_hash when Key is empty.
	ClientIP netip.Addr
	// Key is the consistent_hash key, extracted according to Pool.HashKey.
	// Empty: ClientIP is hashed instead.
	Key []byte
	// Sticky is the value of the pool's sticky cookie. Empty: none.
	Sticky []byte
	// Tried has bit i set when target i already failed this request, so a
	// retry goes elsewhere. Targets from index 64 on cannot be excluded.
	Tried uint64
}

// Tried returns the Request.Tried bit of target index i (0 when i is
// negative or beyond 63).
func Tried(i int) uint64 {
	if i < 0 || i > 63 {
		return 0
	}
	return 1 << uint(i)
}

// State is the live state of one target, shared by every snapshot that
// contains the target's address.
type State struct {
	// Addr is the target's identity: scheme://host:port.
	Addr string

	inflight atomic.Int64
	down     atomic.Bool  // set by active health checks; false means usable
	ewma     atomic.Int64 // latency EWMA in nanoseconds; 0 until observed
	failures atomic.Int32 // consecutive passive failures
	until    atomic.Int64 // passive ejection end, unix ns; 0 when not ejected
	ejected  atomic.Uint64

	mu      sync.Mutex    // guards the fields below; taken only to eject
	lastEnd int64         // end of the last ejection, unix ns
	lastDur time.Duration // length of the last ejection
}

// Inflight reports the requests in flight to the target.
func (s *State) Inflight() int64 { return s.inflight.Load() }

// Acquire counts a request sent to the target; Release ends it.
func (s *State) Acquire() { s.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (s *State) Release() { s.inflight.Add(-1) }

// Healthy reports whether active health checks consider the target up.
// A target starts healthy.
func (s *State) Healthy() bool { return !s.down.Load() }

// SetHealthy records the target's active health.
func (s *State) SetHealthy(ok bool) { s.down.Store(!ok) }

// Registry holds target state by address across snapshots.
type Registry struct {
	mu     sync.Mutex // guards states
	states map[string]*State
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{states: make(map[string]*State)} }

// State returns the state of addr, creating it on first use.
func (r *Registry) State(addr string) *State {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.states[addr]
	if !ok {
		s = &State{Addr: addr}
		r.states[addr] = s
	}
	return s
}

// Retain forgets the state of every address not in keep, after a reload
// removed those targets.
func (r *Registry) Retain(keep map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for addr := range r.states {
		if !keep[addr] {
			delete(r.states, addr)
		}
	}
}

// Target is one member of a pool.
type Target struct {
	// Index is the target's position in the pool.
	Index int
	// Weight is the configured weight (>= 1; less counts as 1).
	Weight int
	// State is the live state shared across snapshots.
	State *State

	pool *Pool // set by NewPool and New
}

// algorithm is one balancing algorithm over a pool's targets. pick returns
// a target that f accepts, or nil only when f accepts none.
type algorithm interface {
	pick(r Request, f filter) *Target
}

// Pool is an upstream's targets and its picking algorithm. It is immutable
// once built, and safe for concurrent use.
type Pool struct {
	Name    string
	Targets []*Target
	// Balancer is the algorithm's name (config.Balancer*).
	Balancer string
	// HashKey says what the proxy puts in Request.Key for consistent_hash.
	HashKey HashKey

	algo    algorithm
	rnd     Rand
	now     func() time.Time
	log     *slog.Logger
	onEject func(upstream, target string, d time.Duration)
	passive *config.Passive // nil: no outlier detection
	sticky  *sticky         // nil: no sticky cookie
	ejectMu sync.Mutex      // serializes ejections, so the percentage cap holds
}

// NewPool returns a round robin pool over targets, without sticky cookies
// or passive checks. It takes ownership of targets.
func NewPool(name string, targets []*Target) *Pool {
	p, err := New(name, &config.Upstream{Balancer: config.BalancerRoundRobin}, targets, Options{})
	if err != nil {
		panic(err) // round robin over any targets cannot fail
	}
	return p
}

// New returns the pool of upstream name configured by up (after
// config.ApplyDefaults), over targets, which it takes ownership of: the
// target at position i must have Index i.
func New(name string, up *config.Upstream, targets []*Target, opt Options) (*Pool, error) {
	p := &Pool{
		Name:     name,
		Targets:  targets,
		Balancer: up.Balancer,
		rnd:      opt.Rand,
		now:      opt.Now,
		log:      opt.Logger,
		onEject:  opt.OnEject,
		passive:  passiveDefaults(up.Passive),
	}
	if p.Balancer == "" {
		p.Balancer = config.DefaultBalancer
	}
	if p.rnd == nil {
		p.rnd = runtimeRand{}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	for i, t := range targets {
		if t.Index != i {
			return nil, fmt.Errorf("balancer: upstream %q: target %d has index %d", name, i, t.Index)
		}
		t.pool = p
	}
	var err error
	if p.HashKey, err = ParseHashKey(up.HashKey); err != nil {
		return nil, fmt.Errorf("balancer: upstream %q: %w", name, err)
	}
	if p.algo, err = newAlgorithm(p); err != nil {
		return nil, fmt.Errorf("balancer: upstream %q: %w", name, err)
	}
	if up.Sticky != nil {
		p.sticky = newSticky(opt.StickyKey, name, targets)
	}
	return p, nil
}

// newAlgorithm builds p's algorithm.
func newAlgorithm(p *Pool) (algorithm, error) {
	switch p.Balancer {
	case config.BalancerRoundRobin:
		return newRoundRobin(p.Targets), nil
	case config.BalancerWeightedRoundRobin:
		return newWeightedRoundRobin(p.Targets), nil
	case config.BalancerLeastConn:
		return newLeastConn(p.Targets, p.rnd), nil
	case config.BalancerRandom:
		return newRandom(p.Targets, p.rnd), nil
	case config.BalancerP2C:
		return newP2C(p.Targets, p.rnd), nil
	case config.BalancerIPHash:
		return newIPHash(p.Targets), nil
	case config.BalancerConsistentHash:
		return newMaglev(p.Targets)
	}
	return nil, fmt.Errorf("unknown balancer %q", p.Balancer)
}

// Pick returns a usable target in the pool's order, skipping exclude (the
// target a retry has just failed on; -1 for none), or nil when no target is
// usable. It is PickFor without a client IP, hash key or sticky cookie.
func (p *Pool) Pick(exclude int) *Target {
	return p.PickFor(Request{Tried: Tried(exclude)})
}

// PickFor returns the target for r: its sticky target when that is usable,
// else the algorithm's choice among usable targets, else (panic mode) its
// choice among targets only passively ejected, else nil.
func (p *Pool) PickFor(r Request) *Target {
	if len(p.Targets) == 0 {
		return nil
	}
	f := filter{now: p.now, tried: r.Tried}
	if p.sticky != nil && len(r.Sticky) > 0 {
		if i, ok := p.sticky.index[string(r.Sticky)]; ok && f.ok(p.Targets[i]) {
			return p.Targets[i]
		}
	}
	if t := p.algo.pick(r, f); t != nil {
		return t
	}
	f.panic = true
	return p.algo.pick(r, f)
}

// filter decides which targets a pick may return. It is passed by value so
// that it stays on the stack; ok may read the clock once, lazily.
type filter struct {
	now     func() time.Time
	nowNano int64 // 0 until read
	tried   uint64
	panic   bool // accept passively ejected targets
}

// ok reports whether t may be picked.
func (f *filter) ok(t *Target) bool {
	if t.Index < 64 && f.tried&(1<<uint(t.Index)) != 0 {
		return false
	}
	s := t.State
	if s.down.Load() {
		return false
	}
	if f.panic {
		return true
	}
	u := s.until.Load()
	if u == 0 {
		return true
	}
	if f.nowNano == 0 {
		f.nowNano = f.now().UnixNano()
	}
	if f.nowNano < u {
		return false
	}
	s.until.CompareAndSwap(u, 0) // re-admitted: later picks skip the clock
	return true
}

// scan returns the first target from start on (wrapping) that f accepts.
func scan(ts []*Target, start int, f *filter) *Target {
	n := len(ts)
	for i := range n {
		j := start + i
		if j >= n {
			j -= n
		}
		if f.ok(ts[j]) {
			return ts[j]
		}
	}
	return nil
}

// below maps x uniformly (up to 2^-64 bias) onto [0, n).
func below(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// weight returns t's weight, at least 1.
func weight(t *Target) int {
	return max(t.Weight, 1)
}
