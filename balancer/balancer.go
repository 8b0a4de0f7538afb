// Package balancer picks a target of an upstream pool for each request.
//
// A Pool is immutable configuration (its targets and algorithm) built once per
// config snapshot; the live state of a target (in-flight requests, health) is
// held in a State that a Registry keys by target address, so that it survives
// a reload that keeps the target. Picks take no lock and allocate nothing.
package balancer

import (
	"sync"
	"sync/atomic"
)

// State is the live state of one target, shared by every snapshot that
// contains the target's address.
type State struct {
	// Addr is the target's identity: scheme://host:port.
	Addr string

	inflight atomic.Int64
	down     atomic.Bool // set by health checking; false means usable
}

// Inflight reports the requests in flight to the target.
func (s *State) Inflight() int64 { return s.inflight.Load() }

// Acquire counts a request sent to the target; Release ends it.
func (s *State) Acquire() { s.inflight.Add(1) }

// Release ends a request counted by Acquire.
func (s *State) Release() { s.inflight.Add(-1) }

// Healthy reports whether the target may be picked.
func (s *State) Healthy() bool { return !s.down.Load() }

// SetHealthy records the target's health.
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
	// Weight is the configured weight (>= 1).
	Weight int
	// State is the live state shared across snapshots.
	State *State
}

// Pool is an upstream's targets and its picking algorithm.
type Pool struct {
	Name    string
	Targets []*Target

	next atomic.Uint64 // round robin cursor
}

// NewPool returns a pool over targets.
func NewPool(name string, targets []*Target) *Pool {
	return &Pool{Name: name, Targets: targets}
}

// Pick returns the next healthy target in round robin order, skipping
// exclude (the target a retry has just failed on; -1 for none), or nil when
// no target is usable.
func (p *Pool) Pick(exclude int) *Target {
	n := uint64(len(p.Targets))
	if n == 0 {
		return nil
	}
	start := p.next.Add(1) - 1
	for i := uint64(0); i < n; i++ {
		t := p.Targets[(start+i)%n]
		if t.Index != exclude && t.State.Healthy() {
			return t
		}
	}
	return nil
}
