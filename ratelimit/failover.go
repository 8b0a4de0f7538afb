package ratelimit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Back-off defaults of Failover.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 30 * time.Second
)

// Failover wraps a shared store (Redis) and keeps decisions flowing while it
// is unreachable.
//
// After a store error, Failover stops calling the store for a back-off
// period (MinBackoff, doubling after each failed probe up to MaxBackoff);
// then one call probes the store while the others still fall back, and a
// success restores the store. Meanwhile each decision comes from Local
// (on_store_error: allow: a memory store of this instance with the same
// policy, so with N instances a client may get up to N times the limit) or,
// when Local is nil (deny), is a refusal flagged Unavailable. The change of
// state is logged once each way, not per request.
//
// Allow never returns an error. A call whose own context ends (the
// downstream went away) falls back without blaming the store.
type Failover struct {
	store  Limiter
	local  Limiter // nil: deny
	policy Policy
	o      FailoverOptions

	degraded  atomic.Bool
	openUntil atomic.Int64 // µs: no store call before this while degraded
	probing   atomic.Bool  // one call probes at a time

	storeErrors atomic.Uint64
	fallbacks   atomic.Uint64
	refusals    atomic.Uint64

	mu      sync.Mutex    // guards the field below and state transitions
	backoff time.Duration // the current back-off while degraded
}

// FailoverOptions configures a Failover. The zero value is ready to use.
type FailoverOptions struct {
	// MinBackoff is the first back-off after a failure. Default
	// DefaultMinBackoff.
	MinBackoff time.Duration
	// MaxBackoff caps the doubling back-off. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Logger receives the transitions. Default: discard.
	Logger *slog.Logger
	// OnChange, if set, is called on each transition (degraded true when
	// the store became unavailable), e.g. to set a gauge. It must not call
	// back into the Failover.
	OnChange func(degraded bool)
}

// NewFailover wraps store for policy p. local is the fallback for
// on_store_error: allow; nil means deny.
func NewFailover(store, local Limiter, p Policy, o FailoverOptions) *Failover {
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(o.MinBackoff, DefaultMaxBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Failover{store: store, local: local, policy: p, o: o}
}

// Allow implements Limiter.
func (f *Failover) Allow(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	probe := false
	if f.degraded.Load() {
		if now.UnixMicro() < f.openUntil.Load() || !f.probing.CompareAndSwap(false, true) {
			return f.fallback(ctx, key, now)
		}
		probe = true
		defer f.probing.Store(false)
	}
	d, err := f.store.Allow(ctx, key, now)
	if err != nil {
		if ctx.Err() == nil {
			f.fail(err, now, probe)
		}
		return f.fallback(ctx, key, now)
	}
	if probe {
		f.recover()
	}
	return d, nil
}

// fail records a store error. A failed probe doubles the back-off; errors of
// calls that were already under way when the store went down do not.
func (f *Failover) fail(err error, now time.Time, probe bool) {
	f.storeErrors.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.degraded.Load():
		f.backoff = f.o.MinBackoff
	case probe:
		f.backoff = min(2*f.backoff, f.o.MaxBackoff)
	default:
		return
	}
	// openUntil before degraded, so no caller sees degraded with a stale
	// openUntil and probes at once.
	f.openUntil.Store(now.Add(f.backoff).UnixMicro())
	if probe {
		f.o.Logger.Debug("ratelimit: store still unavailable",
			"policy", f.policy.name, "retry_in", f.backoff, "error", err)
		return
	}
	f.degraded.Store(true)
	f.o.Logger.Warn("ratelimit: store unavailable, falling back",
		"policy", f.policy.name, "on_store_error", f.mode(), "retry_in", f.backoff, "error", err)
	if f.o.OnChange != nil {
		f.o.OnChange(true)
	}
}

// recover records a successful probe.
func (f *Failover) recover() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.degraded.Load() {
		return
	}
	f.degraded.Store(false)
	f.backoff = 0
	f.o.Logger.Info("ratelimit: store available again", "policy", f.policy.name)
	if f.o.OnChange != nil {
		f.o.OnChange(false)
	}
}

// fallback decides without the store.
func (f *Failover) fallback(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	if f.local != nil {
		f.fallbacks.Add(1)
		d, err := f.local.Allow(ctx, key, now)
		d.Fallback = true
		return d, err
	}
	f.refusals.Add(1)
	wait := time.Duration(f.openUntil.Load()-now.UnixMicro()) * time.Microsecond
	return Decision{
		Limit:       f.policy.burst,
		RetryAfter:  max(wait, time.Second),
		Unavailable: true,
	}, nil
}

func (f *Failover) mode() string {
	if f.local != nil {
		return "allow"
	}
	return "deny"
}

// FailoverStats are a Failover's counters, for metrics.
type FailoverStats struct {
	// Degraded reports that the store is considered unavailable.
	Degraded bool
	// StoreErrors counts failed store calls (probes included).
	StoreErrors uint64
	// Fallbacks counts decisions made by the local fallback (allow).
	Fallbacks uint64
	// Refusals counts requests refused as Unavailable (deny).
	Refusals uint64
}

// Stats returns the counters; it takes no lock.
func (f *Failover) Stats() FailoverStats {
	return FailoverStats{
		Degraded:    f.degraded.Load(),
		StoreErrors: f.storeErrors.Load(),
		Fallbacks:   f.fallbacks.Load(),
		Refusals:    f.refusals.Load(),
	}
}
