package balancer

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testlog"
)

// backend is a loopback upstream whose health check answer can be changed.
type backend struct {
	*httptest.Server
	status atomic.Int32
	hits   atomic.Int64
	streak atomic.Int64 // consecutive answers with the current status
	last   atomic.Int32 // the status of the last answer
	host   atomic.Value // the Host of the last check
	path   atomic.Value // the path of the last check
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.status.Store(http.StatusOK)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.host.Store(r.Host)
		b.path.Store(r.URL.Path)
		s := b.status.Load()
		if b.last.Swap(s) != s { // one checker: answers are sequential
			b.streak.Store(0)
		}
		b.streak.Add(1)
		b.hits.Add(1)
		switch s := int(s); s {
		case 0: // hang until the checker gives up
			<-r.Context().Done()
		case http.StatusFound:
			http.Redirect(w, r, "/broken", s)
		default:
			w.WriteHeader(s)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

type transition struct {
	target  string
	healthy bool
}

// checked starts a checker over the backends' pool and returns the pool,
// the transitions it reports, and its log.
func checked(t *testing.T, hc *config.HealthCheck, backends ...*backend) (*Pool, chan transition, *testlog.Buffer) {
	t.Helper()
	reg := NewRegistry()
	ts := make([]*Target, len(backends))
	for i, b := range backends {
		ts[i] = &Target{Index: i, Weight: 1, State: reg.State(b.URL)}
	}
	p := NewPool("api", ts)
	events := make(chan transition, 100)
	logs := &testlog.Buffer{}
	c, err := NewChecker(p, hc, CheckerOptions{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		OnTransition: func(upstream, target string, healthy bool) {
			if upstream != "api" {
				t.Errorf("OnTransition upstream %q; want api", upstream)
			}
			events <- transition{target, healthy}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	t.Cleanup(c.Stop)
	return p, events, logs
}

// fastCheck is a health check quick enough for tests.
func fastCheck() *config.HealthCheck {
	return &config.HealthCheck{
		Path:               "/health",
		Interval:           config.Duration(20 * time.Millisecond),
		Timeout:            config.Duration(200 * time.Millisecond),
		HealthyThreshold:   2,
		UnhealthyThreshold: 2,
	}
}

// await returns the next transition, failing after 5s.
func await(t *testing.T, events chan transition) transition {
	t.Helper()
	select {
	case e := <-events:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no health transition within 5s")
		return transition{}
	}
}

// waitHits waits until b has answered n more checks.
func waitHits(t *testing.T, b *backend, n int64) {
	t.Helper()
	want := b.hits.Load() + n
	deadline := time.Now().Add(5 * time.Second)
	for b.hits.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("backend saw %d checks in 5s; want %d", b.hits.Load(), want)
		}
		time.Sleep(time.Millisecond) // polling another goroutine's progress
	}
}

func TestCheckerDownAndUp(t *testing.T) {
	tests := []struct {
		name   string
		status int32
		reason string
	}{
		{"5xx", http.StatusServiceUnavailable, "503"},
		{"timeout", 0, "deadline exceeded"},
		{"unexpected 404", http.StatusNotFound, "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := newBackend(t), newBackend(t)
			p, events, logs := checked(t, fastCheck(), a, b)
			waitHits(t, a, 3) // several passing checks: no transition
			if !p.Targets[0].State.Healthy() {
				t.Fatal("target a unhealthy while passing")
			}
			a.status.Store(tt.status)
			if e := await(t, events); e != (transition{a.URL, false}) {
				t.Fatalf("transition %+v; want %s unhealthy", e, a.URL)
			}
			for i := range 20 { // b takes every pick meanwhile
				if got := p.Pick(-1); got.Index != 1 {
					t.Fatalf("pick %d with a down: target %d; want 1", i, got.Index)
				}
			}
			a.status.Store(http.StatusNoContent)
			if e := await(t, events); e != (transition{a.URL, true}) {
				t.Fatalf("transition %+v; want %s healthy", e, a.URL)
			}
			if !p.Targets[0].State.Healthy() || !p.Targets[1].State.Healthy() {
				t.Error("a or b unhealthy after a came back")
			}
			waitHits(t, a, 3) // more passing checks: no more transitions
			select {
			case e := <-events:
				t.Errorf("extra transition %+v", e)
			default:
			}
			log := logs.String()
			if strings.Count(log, "target unhealthy") != 1 || strings.Count(log, "target healthy") != 1 {
				t.Errorf("want one line per transition; log:\n%s", log)
			}
			if !strings.Contains(log, tt.reason) {
				t.Errorf("log does not give the reason %q:\n%s", tt.reason, log)
			}
		})
	}
}

func TestCheckerRefused(t *testing.T) {
	a := newBackend(t)
	a.Close() // nothing listens: connection refused
	_, events, _ := checked(t, fastCheck(), a)
	if e := await(t, events); e.healthy {
		t.Fatalf("transition %+v; want unhealthy", e)
	}
}

func TestCheckerThresholds(t *testing.T) {
	a := newBackend(t)
	hc := fastCheck()
	hc.UnhealthyThreshold = 3
	hc.HealthyThreshold = 3
	p, events, _ := checked(t, hc, a)
	a.status.Store(http.StatusInternalServerError)
	await(t, events)
	if n := a.streak.Load(); n < 3 {
		t.Errorf("unhealthy after %d failing checks; want 3", n)
	}
	a.status.Store(http.StatusOK)
	await(t, events)
	if n := a.streak.Load(); n < 3 {
		t.Errorf("healthy after %d passing checks; want 3", n)
	}
	if !p.Targets[0].State.Healthy() {
		t.Error("unhealthy at the end")
	}
}

func TestCheckerHostPathRedirect(t *testing.T) {
	a := newBackend(t)
	a.status.Store(http.StatusFound) // a 3xx passes by default, not followed
	hc := fastCheck()
	hc.Path = "/ready"
	hc.Host = "api.internal"
	checked(t, hc, a)
	waitHits(t, a, 3)
	if h, p := a.host.Load(), a.path.Load(); h != "api.internal" || p != "/ready" {
		t.Errorf("check of host %q path %q; want api.internal /ready", h, p)
	}
}

func TestCheckerStartsFromState(t *testing.T) {
	// After a reload a target down under the previous checker stays down
	// until healthy_threshold passing checks.
	a := newBackend(t)
	reg := NewRegistry()
	st := reg.State(a.URL)
	st.SetHealthy(false)
	p := NewPool("api", []*Target{{Index: 0, Weight: 1, State: st}})
	events := make(chan bool, 10)
	c, err := NewChecker(p, fastCheck(), CheckerOptions{
		Logger:       quiet,
		OnTransition: func(_, _ string, healthy bool) { events <- healthy },
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	defer c.Stop()
	select {
	case h := <-events:
		if !h || !st.Healthy() {
			t.Errorf("transition to healthy=%v; want true", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no transition within 5s")
	}
}

func TestCheckerStop(t *testing.T) {
	a := newBackend(t)
	a.status.Store(0) // every check hangs until stopped
	p := NewPool("api", []*Target{{Index: 0, Weight: 1, State: &State{Addr: a.URL}}})
	c, err := NewChecker(p, fastCheck(), CheckerOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.Start(ctx)
	waitHits(t, a, 1)
	cancel()
	c.Stop() // returns once the hung check is abandoned
	if !p.Targets[0].State.Healthy() {
		t.Error("an interrupted check marked the target down")
	}
	c.Stop() // twice is fine
}

func TestNewCheckerErrors(t *testing.T) {
	p := NewPool("api", targets(1))
	for _, hc := range []*config.HealthCheck{
		{Interval: 0},
		{Interval: config.Duration(time.Second), ExpectedStatuses: []string{"2xx"}},
	} {
		if _, err := NewChecker(p, hc, CheckerOptions{}); err == nil {
			t.Errorf("NewChecker(%+v) succeeded; want an error", hc)
		}
	}
}

func TestExpectedStatuses(t *testing.T) {
	tests := []struct {
		statuses []string
		status   int
		want     bool
	}{
		{nil, 200, true},
		{nil, 399, true},
		{nil, 400, false},
		{nil, 199, false},
		{[]string{"200"}, 200, true},
		{[]string{"200"}, 204, false},
		{[]string{"200", "401-403"}, 403, true},
		{[]string{"200", "401-403"}, 404, false},
	}
	p := NewPool("api", targets(1))
	for _, tt := range tests {
		c, err := NewChecker(p, &config.HealthCheck{Interval: config.Duration(time.Second), ExpectedStatuses: tt.statuses}, CheckerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := c.expected(tt.status); got != tt.want {
			t.Errorf("statuses %q, status %d: %v; want %v", tt.statuses, tt.status, got, tt.want)
		}
	}
	for _, bad := range []string{"", "abc", "99", "600", "300-200", "200-", "-200"} {
		if _, err := parseStatusRange(bad); err == nil {
			t.Errorf("parseStatusRange(%q) succeeded; want an error", bad)
		}
	}
}

func TestJitter(t *testing.T) {
	p := NewPool("api", targets(1))
	c, err := NewChecker(p, &config.HealthCheck{Interval: config.Duration(time.Second)}, CheckerOptions{Rand: seeded(3)})
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := time.Second, time.Duration(0)
	for range 1000 {
		d := c.jittered()
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 900*time.Millisecond || hi > 1100*time.Millisecond || hi-lo < 190*time.Millisecond {
		t.Errorf("jittered intervals in [%v, %v]; want spread over [900ms, 1.1s]", lo, hi)
	}
}

// TestCheckerEndsEjection: HealthyThreshold checks passed in a row during a
// passive ejection end it early; checks that fail leave it alone.
func TestCheckerEndsEjection(t *testing.T) {
	a, b := newBackend(t), newBackend(t)
	reg := NewRegistry()
	ts := []*Target{{Index: 0, Weight: 1, State: reg.State(a.URL)}, {Index: 1, Weight: 1, State: reg.State(b.URL)}}
	logs := &testlog.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	up := &config.Upstream{Balancer: config.BalancerRoundRobin,
		Passive: &config.Passive{MaxFailures: 1, Ejection: config.Duration(time.Hour)}}
	p, err := New("api", up, ts, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewChecker(p, fastCheck(), CheckerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	defer c.Stop()

	// a fails its checks: an ejection outlasts them.
	a.status.Store(http.StatusServiceUnavailable)
	waitHits(t, a, 1)
	if !ts[0].ReportFailure(time.Now()) {
		t.Fatal("a not ejected")
	}
	waitHits(t, a, 5)
	if !ts[0].State.Ejected(time.Now()) {
		t.Fatal("failing checks ended a's ejection")
	}

	// a passes again: two checks in a row (the threshold) end it.
	start := a.hits.Load() // before the switch: every pass is counted
	a.status.Store(http.StatusOK)
	for ts[0].State.Ejected(time.Now()) {
		if a.hits.Load()-start > 10 {
			t.Fatalf("a still ejected after %d passing checks; want 2", a.hits.Load()-start)
		}
		time.Sleep(time.Millisecond) // polling the checker's progress
	}
	if n := a.hits.Load() - start; n < 2 {
		t.Errorf("the ejection ended after %d passing checks; want 2", n)
	}
	if got := strings.Count(logs.String(), "passive ejection ended by active health checks"); got != 1 {
		t.Errorf("%d log lines for the early end; want 1:\n%s", got, logs.String())
	}
	got := map[int]int{}
	for range 20 {
		got[p.Pick(-1).Index]++
	}
	if got[0] != 10 {
		t.Errorf("picks after the ejection ended: %v; want a back in turn", got)
	}
}
