package ratelimit

import (
	"errors"
	"fmt"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// ErrUnsupportedRate is returned by NewPolicy for a rate or burst outside
// what the algorithm can represent.
var ErrUnsupportedRate = errors.New("ratelimit: unsupported rate")

// maxTolerance bounds burst*interval, in µs, so that TAT arithmetic stays
// exact in Lua's doubles (2^53) for the next couple of centuries.
const maxTolerance = 1 << 50 // about 35 years

// Policy is a compiled rate limit policy: immutable, safe to share.
type Policy struct {
	name      string
	quoted    []byte // name as a Structured Field String, for the headers
	interval  int64  // µs between two requests at the sustained rate (T)
	burst     int64  // bucket size
	tolerance int64  // burst*interval: how far ahead of now TAT may run
}

// NewPolicy compiles the policy named name (its key in rate_limits) from rl,
// whose defaults are applied and which is valid.
func NewPolicy(name string, rl *config.RateLimit) (Policy, error) {
	if rl == nil || rl.Rate.N <= 0 || rl.Rate.Per <= 0 || rl.Burst < 1 {
		return Policy{}, fmt.Errorf("%w: policy %q needs a positive rate and burst", ErrUnsupportedRate, name)
	}
	interval := rl.Rate.Per.Microseconds() / rl.Rate.N
	if interval < 1 {
		return Policy{}, fmt.Errorf("%w: policy %q: %d per %s is above 1,000,000/s", ErrUnsupportedRate, name, rl.Rate.N, rl.Rate.Per)
	}
	burst := int64(rl.Burst)
	if burst > maxTolerance/interval {
		return Policy{}, fmt.Errorf("%w: policy %q: burst %d at %d per %s spans more than %s", ErrUnsupportedRate, name, burst, rl.Rate.N, rl.Rate.Per, time.Duration(maxTolerance)*time.Microsecond)
	}
	return Policy{
		name:      name,
		quoted:    appendSFString(nil, name),
		interval:  interval,
		burst:     burst,
		tolerance: burst * interval,
	}, nil
}

// Name returns the policy's name.
func (p Policy) Name() string { return p.name }

// Burst returns the bucket size: the most requests that may pass at once.
func (p Policy) Burst() int64 { return p.burst }

// Interval returns the time between two requests at the sustained rate.
func (p Policy) Interval() time.Duration { return time.Duration(p.interval) * time.Microsecond }

// decide applies GCRA at now (µs) to a key whose stored TAT is tat (0 when
// the key is absent; any tat <= now is the same as absent). It reports
// whether the request passes and returns the TAT to store, which is
// max(tat, now) unchanged when the request is refused.
func (p Policy) decide(tat, now int64) (int64, bool) {
	tat = max(tat, now)
	next := tat + p.interval
	if next-now > p.tolerance {
		return tat, false
	}
	return next, true
}

// decision describes the state after a decision whose stored TAT is ahead
// µs after now (ahead >= 0).
func (p Policy) decision(allowed bool, ahead int64) Decision {
	d := Decision{
		Allowed:   allowed,
		Limit:     p.burst,
		Remaining: max(0, (p.tolerance-ahead)/p.interval),
		Reset:     time.Duration(ahead) * time.Microsecond,
	}
	if wait := ahead + p.interval - p.tolerance; wait > 0 {
		d.RetryAfter = time.Duration(wait) * time.Microsecond
	}
	return d
}

// windowSeconds is the time the bucket takes to refill from empty, in whole
// seconds rounded up, at least 1.
func (p Policy) windowSeconds() int64 {
	return max(1, ceilSeconds(time.Duration(p.tolerance)*time.Microsecond))
}

// ceilSeconds rounds d up to whole seconds; negative d gives 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}
