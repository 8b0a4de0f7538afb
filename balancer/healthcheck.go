package balancer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// Active health checks. A Checker probes every target of one pool with
// "GET path" (type http) or the gRPC health protocol's Check (type grpc,
// grpccheck.go) on a fresh connection every interval (±10% jitter, so that
// the probes of many targets and instances do not align), off the request
// path. healthy_threshold consecutive passing probes mark a down target
// up; unhealthy_threshold consecutive failing probes (a connection error,
// the timeout, or a status outside expected_statuses) mark an up target
// down. Each transition is logged once and reported to OnTransition.
//
// A target starts healthy: a new pool takes traffic at once instead of
// answering 503 until its first probes pass, and the first probe runs as
// soon as the Checker starts, so a dead target is found within
// unhealthy_threshold probes (retries hide it meanwhile). A target's health
// lives in its State, so a Checker built after a reload continues from the
// health the previous one left.

// jitterPercent is the spread of the interval between probes of a target.
const jitterPercent = 10

// maxProbeBody bounds how much of a probe's answer is read.
const maxProbeBody = 64 << 10

// CheckerOptions carry what a Checker takes from outside its config. The
// zero value is ready to use.
type CheckerOptions struct {
	// Logger logs transitions. Nil: slog.Default().
	Logger *slog.Logger
	// OnTransition, when set, is called once per transition (a metrics
	// hook), from the probing goroutine.
	OnTransition func(upstream, target string, healthy bool)
	// TLSConfig is used to probe https:// targets. Nil: Go's defaults.
	TLSConfig *tls.Config
	// Rand draws the jitter; it must be safe for concurrent use. Nil:
	// math/rand/v2's global source.
	Rand Rand
}

// Checker runs the active health checks of one pool.
type Checker struct {
	pool         *Pool
	upstream     string
	targets      []*Target
	urls         []string // probe URL by target position
	host         string
	interval     time.Duration
	timeout      time.Duration
	healthyN     int
	unhealthyN   int
	statuses     []statusRange
	client       *http.Client
	transport    *http.Transport
	grpc         *grpcCheck // nil for type http
	log          *slog.Logger
	onTransition func(upstream, target string, healthy bool)
	rnd          Rand

	mu     sync.Mutex // guards cancel
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewChecker returns the checker of pool p configured by hc (after
// config.ApplyDefaults). It probes scheme://host:port of each target's
// State.Addr ("http://" when the address has no scheme).
func NewChecker(p *Pool, hc *config.HealthCheck, opt CheckerOptions) (*Checker, error) {
	c := &Checker{
		pool:         p,
		upstream:     p.Name,
		targets:      p.Targets,
		host:         hc.Host,
		interval:     hc.Interval.Std(),
		timeout:      hc.Timeout.Std(),
		healthyN:     max(hc.HealthyThreshold, 1),
		unhealthyN:   max(hc.UnhealthyThreshold, 1),
		log:          opt.Logger,
		onTransition: opt.OnTransition,
		rnd:          opt.Rand,
	}
	if c.interval <= 0 {
		return nil, fmt.Errorf("balancer: upstream %q: health check interval %s must be positive", p.Name, c.interval)
	}
	if c.timeout <= 0 {
		c.timeout = config.DefaultHealthCheckTimeout
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.rnd == nil {
		c.rnd = runtimeRand{}
	}
	statuses := hc.ExpectedStatuses
	if len(statuses) == 0 {
		statuses = []string{config.DefaultExpectedStatuses}
	}
	for _, s := range statuses {
		r, err := parseStatusRange(s)
		if err != nil {
			return nil, fmt.Errorf("balancer: upstream %q: %w", p.Name, err)
		}
		c.statuses = append(c.statuses, r)
	}
	path := hc.Path
	if path == "" {
		path = config.DefaultHealthCheckPath
	}
	if hc.Type == config.HealthCheckGRPC {
		c.grpc = newGRPCCheck(hc, opt.TLSConfig)
		path = grpcHealthPath
	}
	for _, t := range p.Targets {
		base := t.State.Addr
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		c.urls = append(c.urls, base+path)
	}
	c.transport = &http.Transport{
		Proxy:             nil, // probe the target itself, whatever HTTP_PROXY says
		DialContext:       (&net.Dialer{Timeout: c.timeout}).DialContext,
		TLSClientConfig:   opt.TLSConfig,
		DisableKeepAlives: true, // a fresh connection per probe, as a new client would open
	}
	c.client = &http.Client{
		Transport: c.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx is an answer, judged by its status
		},
	}
	return c, nil
}

// Start starts probing, until ctx ends or Stop. Start once.
func (c *Checker) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	for i := range c.targets {
		c.wg.Add(1)
		go c.run(ctx, i)
	}
}

// Stop stops probing and waits for the probes in progress to end.
func (c *Checker) Stop() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.transport.CloseIdleConnections()
}

// run probes target i until ctx ends: once at once, then every jittered
// interval after the previous probe ended.
func (c *Checker) run(ctx context.Context, i int) {
	defer c.wg.Done()
	t := c.targets[i]
	var passed, failed int // consecutive
	// passedOut counts the checks passed in a row during the passive
	// ejection numbered ejection.
	var passedOut int
	var ejection uint64
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := c.probe(ctx, c.urls[i])
		if ctx.Err() != nil {
			return // stopping: an interrupted probe says nothing of the target
		}
		if err == nil {
			passed, failed = passed+1, 0
			if passed >= c.healthyN && !t.State.Healthy() {
				t.State.SetHealthy(true)
				c.transition(t, true, nil)
			}
			if n := t.State.Ejections(); n != ejection {
				ejection, passedOut = n, 0
			}
			if now := c.pool.now(); t.State.Ejected(now) {
				if passedOut++; passedOut >= c.healthyN {
					c.pool.endEjection(t, now)
				}
			}
		} else {
			passedOut = 0
			passed, failed = 0, failed+1
			if failed >= c.unhealthyN && t.State.Healthy() {
				t.State.SetHealthy(false)
				c.transition(t, false, err)
			}
		}
		timer.Reset(c.jittered())
	}
}

// jittered returns the interval ± jitterPercent, drawn at random.
func (c *Checker) jittered() time.Duration {
	spread := int64(c.interval) * jitterPercent / 100
	if spread <= 0 {
		return c.interval
	}
	return c.interval - time.Duration(spread) + time.Duration(below(c.rnd.Uint64(), int(2*spread+1)))
}

// transition logs and reports a change of t's health.
func (c *Checker) transition(t *Target, healthy bool, err error) {
	if healthy {
		c.log.Info("target healthy", "upstream", c.upstream, "target", t.State.Addr)
	} else {
		c.log.Warn("target unhealthy", "upstream", c.upstream, "target", t.State.Addr, "error", err)
	}
	if c.onTransition != nil {
		c.onTransition(c.upstream, t.State.Addr, healthy)
	}
}

// errUnexpectedStatus is wrapped by a probe that got an answer with a
// status outside expected_statuses.
var errUnexpectedStatus = errors.New("balancer: unexpected health check status")

// probe sends one health check to url; nil means it passed.
func (c *Checker) probe(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if c.grpc != nil {
		return c.grpc.probe(ctx, url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if c.host != "" {
		req.Host = c.host
	}
	req.Header.Set("User-Agent", "rampart-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	resp.Body.Close()
	if !c.expected(resp.StatusCode) {
		return fmt.Errorf("%w %d", errUnexpectedStatus, resp.StatusCode)
	}
	return err // a body cut short: the target is not well
}

// expected reports whether status passes.
func (c *Checker) expected(status int) bool {
	for _, r := range c.statuses {
		if status >= r.lo && status <= r.hi {
			return true
		}
	}
	return false
}

// statusRange is an inclusive range of HTTP statuses.
type statusRange struct{ lo, hi int }

// parseStatusRange parses "200" or "200-399".
func parseStatusRange(s string) (statusRange, error) {
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(strings.TrimSpace(lo))
	b, errB := strconv.Atoi(strings.TrimSpace(hi))
	if errA != nil || errB != nil || a < 100 || b > 599 || a > b {
		return statusRange{}, fmt.Errorf("invalid expected status %q (want e.g. \"200\" or \"200-399\")", s)
	}
	return statusRange{a, b}, nil
}
