package balancer

import (
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// Passive outlier detection, from live traffic, after Envoy's: the proxy
// reports each exchange with a target (Target.ReportSuccess and
// Target.ReportFailure), and MaxFailures consecutive failures eject the
// target for Ejection. Rules:
//
//   - Failures are connect errors, timeouts and 5xx answers; any other
//     answer is a success and ends the run of failures.
//   - With active health checks, HealthyThreshold passing checks in a row
//     during an ejection end it early (as HAProxy's rise after on-error
//     mark-down, or Envoy's successful_active_health_check_uneject_host).
//   - Ejection ends by itself when its time is up (no timer: picks compare
//     the deadline with the clock), and the run of failures starts again
//     from zero, so MaxFailures more failures are needed to eject again.
//   - Repeated ejection doubles: an ejection that starts within one
//     ejection length of the previous one's end lasts twice as long as the
//     previous one, up to MaxEjection. Otherwise (the target stayed in for
//     at least as long as it was last out) it lasts Ejection again.
//   - At most MaxEjectionPercent of a pool's targets are out at once,
//     counted when ejecting; but one target may always be ejected (as in
//     Envoy), so that a small pool still avoids a failing target. A
//     failure that would exceed the cap ejects nothing; the next failure
//     tries again.
//   - When every target is out, picks fall back to the ejected ones (panic
//     mode; see Pool.PickFor).
//
// The run of failures is counted on the State, with atomics only; ejecting
// takes the pool's lock, which only a target at MaxFailures reaches.

// ReportSuccess records an answer (not a 5xx) from the target: it ends the
// run of consecutive failures.
func (s *State) ReportSuccess() {
	if s.failures.Load() != 0 { // no write, so no cache line bouncing, when healthy
		s.failures.Store(0)
	}
}

// Ejected reports whether passive checks have ejected the target at now.
func (s *State) Ejected(now time.Time) bool { return now.UnixNano() < s.until.Load() }

// Ejections returns how many times passive checks have ejected the target
// (a counter for metrics).
func (s *State) Ejections() uint64 { return s.ejected.Load() }

// ReportSuccess records an answer (not a 5xx) from the target.
func (t *Target) ReportSuccess() { t.State.ReportSuccess() }

// ReportFailure records a connect error, timeout or 5xx from the target at
// now (on the clock of Options.Now), and reports whether it ejected the
// target. Without passive checks on the pool it does nothing.
func (t *Target) ReportFailure(now time.Time) bool {
	p := t.pool
	if p == nil || p.passive == nil {
		return false
	}
	if int(t.State.failures.Add(1)) < p.passive.MaxFailures {
		return false
	}
	return p.eject(t, now)
}

// eject takes t out of rotation at now, unless it is out already or the
// pool's cap forbids.
func (p *Pool) eject(t *Target, now time.Time) bool {
	s, ns := t.State, now.UnixNano()
	p.ejectMu.Lock()
	if s.until.Load() > ns { // out already: late answers of earlier requests
		s.failures.Store(0)
		p.ejectMu.Unlock()
		return false
	}
	if p.ejectedCount(ns) >= p.maxEjected() {
		p.ejectMu.Unlock()
		return false
	}
	s.mu.Lock()
	d := p.passive.Ejection.Std()
	if s.lastEnd != 0 && ns < s.lastEnd+int64(s.lastDur) {
		d = min(max(2*s.lastDur, d), p.passive.MaxEjection.Std())
	}
	s.lastEnd, s.lastDur = ns+int64(d), d
	s.until.Store(s.lastEnd)
	s.failures.Store(0)
	s.ejected.Add(1)
	s.mu.Unlock()
	p.ejectMu.Unlock()

	p.log.Warn("target ejected by passive health checks",
		"upstream", p.Name, "target", s.Addr, "ejection", d, "max_failures", p.passive.MaxFailures)
	if p.onEject != nil {
		p.onEject(p.Name, s.Addr, d)
	}
	return true
}

// endEjection ends t's passive ejection at now, if there is one, and
// reports whether it did: the active health check has seen t pass. The
// ejection's length stays remembered, so that t ejected again soon is out
// twice as long (a target that passes its checks but fails requests
// flaps ever more slowly).
func (p *Pool) endEjection(t *Target, now time.Time) bool {
	s, ns := t.State, now.UnixNano()
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	if s.until.Load() <= ns {
		return false
	}
	s.mu.Lock()
	s.until.Store(ns)
	s.lastEnd = ns
	s.mu.Unlock()
	s.failures.Store(0)
	p.log.Info("passive ejection ended by active health checks", "upstream", p.Name, "target", s.Addr)
	return true
}

// ejectedCount returns how many of p's targets are ejected at ns.
func (p *Pool) ejectedCount(ns int64) int {
	n := 0
	for _, t := range p.Targets {
		if t.State.until.Load() > ns {
			n++
		}
	}
	return n
}

// maxEjected returns how many of p's targets may be out at once:
// MaxEjectionPercent of them, rounded down, but at least one.
func (p *Pool) maxEjected() int {
	return max(len(p.Targets)*p.passive.MaxEjectionPercent/100, 1)
}

// passiveDefaults returns a copy of ps with zero fields defaulted, so that
// a Passive built in code (not through config.ApplyDefaults) is sane.
func passiveDefaults(ps *config.Passive) *config.Passive {
	if ps == nil {
		return nil
	}
	c := *ps
	if c.MaxFailures <= 0 {
		c.MaxFailures = config.DefaultPassiveMaxFailures
	}
	if c.Ejection <= 0 {
		c.Ejection = config.Duration(config.DefaultPassiveEjection)
	}
	if c.MaxEjection <= 0 {
		c.MaxEjection = config.Duration(config.DefaultPassiveMaxEjection)
	}
	c.MaxEjection = max(c.MaxEjection, c.Ejection)
	if c.MaxEjectionPercent <= 0 {
		c.MaxEjectionPercent = config.DefaultMaxEjectionPercent
	}
	return &c
}
