package proxy

// End-to-end tests of load balancing through the proxy (issue 3): every
// algorithm's distribution, sticky cookies, active and passive health,
// retries, traffic splitting and the answers of a pool without a healthy
// target, all with real upstream servers on loopback.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/balancer"
)

// balTarget is one upstream target of these tests: an httptest server that
// names itself in X-Target and in its body, counts the requests it serves,
// and answers /health and everything else with statuses a test can change.
type balTarget struct {
	name string
	up   *httpUpstream

	hits     atomic.Int64 // requests other than /health
	posts    atomic.Int64 // POST requests
	probes   atomic.Int64 // requests to /health
	inflight atomic.Int64 // requests other than /health being served

	health atomic.Int32 // status of /health; 0 means 200
	status atomic.Int32 // status of other requests; 0 means 200
	delay  atomic.Int64 // nanoseconds added to other requests

	// Requests to /hold wait until release is called (or the test ends).
	hold        chan struct{}
	releaseOnce sync.Once
}

// startBalTargets starts n targets named t0, t1, ...
func startBalTargets(t *testing.T, n int) []*balTarget {
	t.Helper()
	ts := make([]*balTarget, n)
	for i := range ts {
		ts[i] = startBalTarget(t, fmt.Sprintf("t%d", i))
	}
	return ts
}

func startBalTarget(t *testing.T, name string) *balTarget {
	t.Helper()
	bt := &balTarget{name: name, hold: make(chan struct{})}
	bt.up = startHTTPUpstream(t, http.HandlerFunc(bt.serveHTTP))
	// Registered after the server's Close, so it runs before it: held
	// requests end and Close does not wait for them.
	t.Cleanup(bt.release)
	return bt
}

func (bt *balTarget) addr() string { return bt.up.addr() }

// release ends the requests held on /hold, and every later one at once.
func (bt *balTarget) release() { bt.releaseOnce.Do(func() { close(bt.hold) }) }

func (bt *balTarget) serveHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("X-Target", bt.name)
	if r.URL.Path == "/health" {
		bt.probes.Add(1)
		w.WriteHeader(statusOr200(bt.health.Load()))
		return
	}
	bt.hits.Add(1)
	if r.Method == http.MethodPost {
		bt.posts.Add(1)
	}
	bt.inflight.Add(1)
	defer bt.inflight.Add(-1)
	if d := bt.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	if r.URL.Path == "/hold" {
		select {
		case <-bt.hold:
		case <-time.After(e2eTimeout):
		}
	}
	w.WriteHeader(statusOr200(bt.status.Load()))
	io.WriteString(w, bt.name)
}

func statusOr200(s int32) int {
	if s == 0 {
		return http.StatusOK
	}
	return int(s)
}

// targetURLs is the YAML list of ts's URLs, indented for upstreams.NAME.targets.
func targetURLs(ts ...*balTarget) string {
	var b strings.Builder
	for _, bt := range ts {
		fmt.Fprintf(&b, "      - url: http://%s\n", bt.addr())
	}
	return b.String()
}

// balanceConfig is a listener "web", an upstream "app" over ts with the
// given extra YAML (indented under the upstream), and a catch-all route.
func balanceConfig(extraUpstream string, ts ...*balTarget) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
%s
    targets:
%s
routes:
  - name: all
    upstream: app
access_log:
  path: "off"
`, indent(extraUpstream, 4), targetURLs(ts...))
}

// targetState returns the live state of target i of upstream name.
func targetState(p *testProxy, upstream string, i int) *balancer.State {
	return p.srv.snap.Load().pools[upstream].balancer.Targets[i].State
}

// lbClient sends requests to the proxy over keep-alive connections.
type lbClient struct {
	t    *testing.T
	addr string
	hc   *http.Client
}

func newLBClient(t *testing.T, addr string) *lbClient {
	tr := &http.Transport{
		Proxy:               nil, // straight to the proxy under test
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &lbClient{t: t, addr: addr, hc: &http.Client{Transport: tr, Timeout: e2eTimeout}}
}

// lbResp is what a test needs of a response.
type lbResp struct {
	status  int
	target  string // X-Target: "" when Rampart answered itself
	body    string
	cookies []*http.Cookie // set by the response
	elapsed time.Duration
}

// do sends one request; hdr holds header name, value pairs.
func (c *lbClient) do(method, path string, hdr ...string) (lbResp, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader("payload")
	}
	req, err := http.NewRequest(method, "http://"+c.addr+path, body)
	if err != nil {
		return lbResp{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return lbResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return lbResp{}, err
	}
	return lbResp{status: resp.StatusCode, target: resp.Header.Get("X-Target"), body: string(b),
		cookies: resp.Cookies(), elapsed: time.Since(start)}, nil
}

// get sends a GET and fails the test on a transport error.
func (c *lbClient) get(path string, hdr ...string) lbResp {
	c.t.Helper()
	r, err := c.do(http.MethodGet, path, hdr...)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// counts sends n GETs of path and counts the targets that answered 200.
func (c *lbClient) counts(n int, path string, hdr ...string) map[string]int {
	c.t.Helper()
	got := map[string]int{}
	for range n {
		r := c.get(path, hdr...)
		if r.status != http.StatusOK {
			c.t.Fatalf("GET %s: status %d (%q); want 200", path, r.status, r.body)
		}
		got[r.target]++
	}
	return got
}

// cookieNamed returns the cookie called name among cs, or nil.
func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// within reports whether got is within tol of want.
func within(got, want, tol int) bool { return got >= want-tol && got <= want+tol }

// TestE2EBalanceRoundRobin: one client's requests rotate over the targets in
// order, so the shares are exactly even.
func TestE2EBalanceRoundRobin(t *testing.T) {
	ts := startBalTargets(t, 3)
	p := startProxy(t, balanceConfig("balancer: round_robin", ts...))
	c := newLBClient(t, p.addr)

	var seq []string
	for range 300 {
		r := c.get("/")
		if r.status != http.StatusOK {
			t.Fatalf("status %d; want 200", r.status)
		}
		seq = append(seq, r.target)
	}
	for i := 3; i < len(seq); i++ {
		if seq[i] != seq[i-3] {
			t.Fatalf("request %d went to %s, request %d to %s; want a period of 3: %v", i, seq[i], i-3, seq[i-3], seq[:12])
		}
	}
	for _, bt := range ts {
		if got := bt.hits.Load(); got != 100 {
			t.Errorf("%s served %d of 300 requests; want exactly 100", bt.name, got)
		}
	}
}

// TestE2EBalanceWeightedRoundRobin: weights 3:1 give the smooth sequence
// a a b a, repeated, never two b in a row nor more than three a.
func TestE2EBalanceWeightedRoundRobin(t *testing.T) {
	ts := startBalTargets(t, 2)
	yaml := balanceConfig("balancer: weighted_round_robin", ts...)
	yaml = strings.Replace(yaml, "url: http://"+ts[0].addr(), "url: http://"+ts[0].addr()+"\n        weight: 3", 1)
	p := startProxy(t, yaml)
	c := newLBClient(t, p.addr)

	var seq strings.Builder
	for range 400 {
		r := c.get("/")
		switch r.target {
		case "t0":
			seq.WriteByte('a')
		case "t1":
			seq.WriteByte('b')
		default:
			t.Fatalf("status %d from %q; want 200 from t0 or t1", r.status, r.target)
		}
	}
	got := seq.String()
	if want := strings.Repeat("aaba", 100); got != want {
		t.Errorf("sequence starts %s; want %s...", got[:24], want[:24])
	}
	if strings.Contains(got, "bb") || strings.Contains(got, "aaaa") {
		t.Errorf("sequence has a burst: %s", got[:40])
	}
	if a, b := ts[0].hits.Load(), ts[1].hits.Load(); a != 300 || b != 100 {
		t.Errorf("served %d:%d; want 300:100", a, b)
	}
}

// TestE2EBalanceLeastConn: while one target holds slow requests, every
// request goes to the idle one; once both are idle they share the load.
// The slow requests reach the busy target through a second upstream that
// lists only it: in-flight counts are kept per target address, whatever
// the pool.
func TestE2EBalanceLeastConn(t *testing.T) {
	ts := startBalTargets(t, 2)
	busy, idle := ts[0], ts[1]
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    balancer: least_conn
    targets:
%s
  busy:
    targets:
%s
routes:
  - name: hold
    match: {path_prefix: /hold}
    upstream: busy
  - name: all
    upstream: app
access_log:
  path: "off"
`, targetURLs(busy, idle), targetURLs(busy)))
	c := newLBClient(t, p.addr)

	const held = 3
	var wg sync.WaitGroup
	errs := make(chan error, held)
	for range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.do(http.MethodGet, "/hold")
			if err == nil && (r.status != http.StatusOK || r.target != busy.name) {
				err = fmt.Errorf("held request: status %d from %q; want 200 from %s", r.status, r.target, busy.name)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	defer wg.Wait()
	defer busy.release()
	if !waitFor(e2eTimeout, func() bool { return busy.inflight.Load() == held }) {
		t.Fatalf("%s holds %d requests; want %d", busy.name, busy.inflight.Load(), held)
	}
	if got := targetState(p, "app", 0).Inflight(); got != held {
		t.Fatalf("in-flight count of %s in upstream app is %d; want %d (shared by address)", busy.name, got, held)
	}

	got := c.counts(50, "/")
	if got[idle.name] != 50 {
		t.Errorf("while %s holds %d requests: %v; want all 50 on %s", busy.name, held, got, idle.name)
	}

	busy.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Both idle: sequential requests tie at 0 in flight, broken at random.
	got = c.counts(200, "/")
	for _, bt := range ts {
		if got[bt.name] < 60 {
			t.Errorf("both idle: %v; want each target to serve at least 60 of 200", got)
		}
	}
}

// TestE2EBalanceRandom: 600 requests over three targets land within 50
// (over four standard deviations) of 200 each.
func TestE2EBalanceRandom(t *testing.T) {
	ts := startBalTargets(t, 3)
	p := startProxy(t, balanceConfig("balancer: random", ts...))
	c := newLBClient(t, p.addr)

	got := c.counts(600, "/")
	for _, bt := range ts {
		if !within(got[bt.name], 200, 50) {
			t.Errorf("%v; want 200 ± 50 on each target", got)
			break
		}
	}
}

// TestE2EBalanceP2C: a target 20 ms slower than the others gets almost no
// requests once its latency is known, where round robin would give it a
// third.
func TestE2EBalanceP2C(t *testing.T) {
	ts := startBalTargets(t, 3)
	slow := ts[2]
	slow.delay.Store(int64(20 * time.Millisecond))
	p := startProxy(t, balanceConfig("balancer: p2c", ts...))
	c := newLBClient(t, p.addr)

	const workers, each = 4, 75
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if r, err := c.do(http.MethodGet, "/"); err != nil || r.status != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d requests failed", n)
	}
	// A target is tried before it has a latency sample, so the slow one
	// serves a few requests: the first ones, and each that two concurrent
	// picks make before its first answer.
	if got, total := slow.hits.Load(), int64(workers*each); got > total/20 {
		t.Errorf("the slow target served %d of %d requests; want at most %d (round robin: %d)",
			got, total, total/20, total/3)
	}
	if l := targetState(p, "app", 2).Latency(); l < 20*time.Millisecond {
		t.Errorf("latency EWMA of the slow target is %s; want at least 20ms", l)
	}
}

// TestE2EBalanceIPHash: each client IP (from X-Forwarded-For, the peer
// being a trusted proxy) keeps its target, and the IPs spread over all of
// them.
func TestE2EBalanceIPHash(t *testing.T) {
	ts := startBalTargets(t, 3)
	p := startProxy(t, balanceConfig("balancer: ip_hash", ts...)+"trusted_proxies: [127.0.0.1]\n")
	c := newLBClient(t, p.addr)

	perTarget := map[string]int{}
	for i := range 60 {
		ip := fmt.Sprintf("10.1.%d.%d", i/7, 1+i*37%250)
		got := c.counts(5, "/", "X-Forwarded-For", ip)
		if len(got) != 1 {
			t.Fatalf("client %s went to %v; want one target", ip, got)
		}
		for name := range got {
			perTarget[name]++
		}
	}
	for _, bt := range ts {
		if perTarget[bt.name] < 5 {
			t.Errorf("clients per target %v; want each target to have at least 5 of 60", perTarget)
			break
		}
	}
}

// TestE2EBalanceConsistentHash: a key (header X-User) keeps its target, and
// a proxy without one of four targets moves the keys of that target and
// almost no other.
func TestE2EBalanceConsistentHash(t *testing.T) {
	ts := startBalTargets(t, 4)
	const extra = "balancer: consistent_hash\nhash_key: header:X-User"
	full := newLBClient(t, startProxy(t, balanceConfig(extra, ts...)).addr)
	less := newLBClient(t, startProxy(t, balanceConfig(extra, ts[0], ts[1], ts[2])).addr)
	removed := ts[3].name

	const keys = 400
	perTarget := map[string]int{}
	moved, movedOthers := 0, 0
	for i := range keys {
		user := fmt.Sprintf("user-%d", i)
		got := full.counts(3, "/", "X-User", user)
		if len(got) != 1 {
			t.Fatalf("key %s went to %v; want one target", user, got)
		}
		var before string
		for name := range got {
			before = name
		}
		perTarget[before]++
		after := less.get("/", "X-User", user).target
		switch {
		case before == removed:
			moved++
		case after != before:
			moved++
			movedOthers++
		}
	}
	for _, bt := range ts {
		if !within(perTarget[bt.name], keys/4, keys/8) {
			t.Errorf("keys per target %v; want %d ± %d each", perTarget, keys/4, keys/8)
			break
		}
	}
	// Maglev moves the removed target's keys (1/N) and a few others.
	if moved > keys/4+keys/10 || movedOthers > keys/50 {
		t.Errorf("removing 1 of 4 targets moved %d of %d keys (%d not on it); want about %d, at most %d not on it",
			moved, keys, movedOthers, keys/4, keys/50)
	}
	t.Logf("removing 1 of 4 targets moved %d of %d keys (%d not on the removed target)", moved, keys, movedOthers)
}

// TestE2EBalanceSticky: the sticky cookie pins a client to its target (with
// round robin underneath), names the target without its address, and moves
// the client, rewriting the cookie, once active checks mark the target down.
func TestE2EBalanceSticky(t *testing.T) {
	ts := startBalTargets(t, 3)
	p := startProxy(t, balanceConfig(`
sticky: {cookie: pin}
health_check: {path: /health, interval: 50ms, timeout: 40ms, healthy_threshold: 1, unhealthy_threshold: 1}`, ts...))
	c := newLBClient(t, p.addr)

	first := c.get("/")
	ck := cookieNamed(first.cookies, "pin")
	if first.status != http.StatusOK || ck == nil {
		t.Fatalf("first response: status %d, cookies %v; want 200 and a cookie pin", first.status, first.cookies)
	}
	if ck.Path != "/" || !ck.HttpOnly {
		t.Errorf("cookie %s: Path %q, HttpOnly %v; want / and true", ck, ck.Path, ck.HttpOnly)
	}
	pinned := first.target
	var pinnedT *balTarget
	for _, bt := range ts {
		host, port, _ := net.SplitHostPort(bt.addr())
		if strings.Contains(ck.Value, port) || strings.Contains(ck.Value, host) {
			t.Errorf("cookie value %q shows the address %s", ck.Value, bt.addr())
		}
		if bt.name == pinned {
			pinnedT = bt
		}
	}
	if pinnedT == nil {
		t.Fatalf("first response from %q; want one of the targets", pinned)
	}
	for i := range 20 {
		r := c.get("/", "Cookie", "pin="+ck.Value)
		if r.target != pinned {
			t.Fatalf("request %d with the cookie went to %s; want %s", i, r.target, pinned)
		}
		if len(r.cookies) != 0 {
			t.Errorf("request %d with a valid cookie got Set-Cookie %v; want none", i, r.cookies)
		}
	}
	// Without the cookie, round robin goes on.
	if got := c.counts(30, "/"); len(got) != 3 {
		t.Errorf("without the cookie: %v; want all three targets", got)
	}

	pinnedT.health.Store(http.StatusServiceUnavailable)
	var moved lbResp
	if !waitFor(e2eTimeout, func() bool {
		moved = c.get("/", "Cookie", "pin="+ck.Value)
		return moved.target != pinned
	}) {
		t.Fatalf("requests still go to %s after its health check fails", pinned)
	}
	if moved.status != http.StatusOK {
		t.Fatalf("status %d after the move; want 200", moved.status)
	}
	nk := cookieNamed(moved.cookies, "pin")
	if nk == nil || nk.Value == ck.Value {
		t.Fatalf("after the move to %s: cookies %v; want pin rewritten", moved.target, moved.cookies)
	}
	for i := range 10 {
		if r := c.get("/", "Cookie", "pin="+nk.Value); r.target != moved.target {
			t.Fatalf("request %d with the new cookie went to %s; want %s", i, r.target, moved.target)
		}
	}
}

// TestE2EBalanceActiveHealth: a target fails (its health check and its
// traffic answer 503), is marked down, then recovers and is marked up,
// while one client sends requests all along: none fails.
//
// The failing target answers 503 to its traffic too, as a real one would;
// retries: 1 hides the requests it gets before the checker notices (at most
// one interval). The test also checks that it is the checker that takes the
// target out: once its state is down it gets no request at all.
func TestE2EBalanceActiveHealth(t *testing.T) {
	ts := startBalTargets(t, 2)
	flaky, steady := ts[0], ts[1]
	p := startProxy(t, balanceConfig(`
retries: 1
health_check: {path: /health, interval: 50ms, timeout: 40ms, healthy_threshold: 1, unhealthy_threshold: 1}`, ts...))
	c := newLBClient(t, p.addr)
	state := targetState(p, "app", 0)

	const maxRequests, pace = 300, 5 * time.Millisecond
	var failures []string
	phase := "up"
	var phaseStart int // request index at which the phase began
	var hitsAtDown, servedAfterUp int64
	for i := 0; i < maxRequests && phase != "done"; i++ {
		r, err := c.do(http.MethodGet, "/")
		switch {
		case err != nil:
			failures = append(failures, fmt.Sprintf("request %d (%s): %v", i, phase, err))
		case r.status != http.StatusOK:
			failures = append(failures, fmt.Sprintf("request %d (%s): status %d from %q", i, phase, r.status, r.target))
		}
		switch phase {
		case "up": // both serve; then the flaky one fails
			if i-phaseStart >= 40 {
				if flaky.hits.Load() == 0 {
					t.Fatalf("%s served nothing while healthy", flaky.name)
				}
				flaky.health.Store(http.StatusServiceUnavailable)
				flaky.status.Store(http.StatusServiceUnavailable)
				phase, phaseStart = "failing", i
			}
		case "failing": // until the checker marks it down
			if !state.Healthy() {
				hitsAtDown = flaky.hits.Load()
				phase, phaseStart = "down", i
			}
		case "down": // no request may reach it now
			if got := flaky.hits.Load(); got != hitsAtDown {
				t.Errorf("request %d: %s got %d requests while marked down", i, flaky.name, got-hitsAtDown)
				hitsAtDown = got
			}
			if i-phaseStart >= 60 {
				flaky.health.Store(0)
				flaky.status.Store(0)
				phase, phaseStart = "recovering", i
			}
		case "recovering": // until the checker marks it up
			if state.Healthy() {
				servedAfterUp = flaky.hits.Load()
				phase, phaseStart = "back", i
			}
		case "back": // it serves again
			if i-phaseStart >= 40 {
				phase = "done"
			}
		}
		time.Sleep(pace)
	}
	if phase != "done" {
		t.Fatalf("after %d requests the test is in phase %q; the checker did not follow (state healthy=%v)",
			maxRequests, phase, state.Healthy())
	}
	if len(failures) > 0 {
		t.Errorf("%d client requests failed; want none:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	if got := flaky.hits.Load() - servedAfterUp; got < 10 {
		t.Errorf("%s served %d of 40 requests after it recovered; want about 20", flaky.name, got)
	}
	if steady.probes.Load() == 0 || flaky.probes.Load() == 0 {
		t.Errorf("health probes: %d and %d; want some on both targets", flaky.probes.Load(), steady.probes.Load())
	}
}

// TestE2EBalancePassive: max_failures consecutive 5xx or connect errors
// eject a target for `ejection`; after it, the target is tried again.
func TestE2EBalancePassive(t *testing.T) {
	t.Run("5xx", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		bad, good := ts[0], ts[1]
		bad.status.Store(http.StatusInternalServerError)
		const ejection = 300 * time.Millisecond
		p := startProxy(t, balanceConfig(`
passive: {max_failures: 3, ejection: 300ms}`, ts...))
		c := newLBClient(t, p.addr)
		state := targetState(p, "app", 0)

		var ejectedAt time.Time
		for i := 0; i < 20 && ejectedAt.IsZero(); i++ {
			r := c.get("/")
			if r.target == bad.name && r.status != http.StatusInternalServerError {
				t.Fatalf("status %d from %s; want its 500 relayed", r.status, bad.name)
			}
			if state.Ejected(time.Now()) {
				ejectedAt = time.Now()
			}
		}
		if ejectedAt.IsZero() {
			t.Fatalf("%s not ejected after %d failures", bad.name, bad.hits.Load())
		}
		if got := bad.hits.Load(); got != 3 {
			t.Errorf("%s ejected after %d requests; want max_failures = 3", bad.name, got)
		}
		if got := state.Ejections(); got != 1 {
			t.Errorf("ejections %d; want 1", got)
		}
		bad.status.Store(0) // healthy again, but ejected still

		// While ejected, every request goes to the other target.
		for time.Since(ejectedAt) < ejection*2/3 {
			if r := c.get("/"); r.target != good.name || r.status != http.StatusOK {
				t.Fatalf("%s after the ejection: status %d from %s; want 200 from %s",
					time.Since(ejectedAt).Round(time.Millisecond), r.status, r.target, good.name)
			}
		}
		if got := bad.hits.Load(); got != 3 {
			t.Errorf("%s got %d requests while ejected", bad.name, got-3)
		}
		var back time.Duration
		if !waitFor(e2eTimeout, func() bool {
			r := c.get("/")
			back = time.Since(ejectedAt)
			return r.target == bad.name && r.status == http.StatusOK
		}) {
			t.Fatalf("%s not readmitted after its ejection of %s", bad.name, ejection)
		}
		// ejectedAt was taken just after the third failure's answer.
		if back < ejection-50*time.Millisecond || back > ejection+time.Second {
			t.Errorf("%s readmitted %s after its ejection; want about %s", bad.name, back, ejection)
		}
	})

	t.Run("connect errors", func(t *testing.T) {
		good := startBalTarget(t, "good")
		dead := freeAddr(t)
		// connect_retries: 0, so that each connect error is the client's
		// 502 and can be counted here (by default it is retried on good).
		yaml := balanceConfig("passive: {max_failures: 2, ejection: 200ms}\nconnect_retries: 0", good)
		yaml = strings.Replace(yaml, "    targets:\n", "    targets:\n      - url: http://"+dead+"\n", 1)
		p := startProxy(t, yaml)
		c := newLBClient(t, p.addr)
		state := targetState(p, "app", 0)

		bad := 0
		for i := 0; i < 20 && !state.Ejected(time.Now()); i++ {
			r := c.get("/")
			if r.target == "" {
				if r.status != http.StatusBadGateway {
					t.Errorf("status %d for the dead target; want 502", r.status)
				}
				bad++
			}
		}
		if !state.Ejected(time.Now()) || bad != 2 {
			t.Fatalf("ejected %v after %d connect errors; want ejected after 2", state.Ejected(time.Now()), bad)
		}
		for range 10 { // well within the 200ms ejection
			if r := c.get("/"); r.target != good.name {
				t.Fatalf("while the dead target is ejected: status %d from %q; want 200 from good", r.status, r.target)
			}
		}
		// The target comes to life at the same address, and is readmitted.
		ln, err := net.Listen("tcp", dead)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", dead, err)
		}
		revived := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Target", "revived")
		})}
		go revived.Serve(ln)
		t.Cleanup(func() { _ = revived.Close() })
		if !waitFor(e2eTimeout, func() bool { return c.get("/").target == "revived" }) {
			t.Fatal("the revived target is never tried again")
		}
	})
}

// TestE2EBalanceRetries: retries: 1 hides a killed target from idempotent
// requests, a non-idempotent request that got a 503 is not sent again, and
// the retry budget bounds retries when a target stays dead.
func TestE2EBalanceRetries(t *testing.T) {
	// The proxy holds idle pooled connections to the target when it dies,
	// as any proxy under load does: one, or several. Each is found stale
	// on use; the request must still reach the survivor.
	for _, pooled := range []int{1, 8} {
		t.Run(fmt.Sprintf("killed target hidden from GET, %d pooled conns", pooled), func(t *testing.T) {
			killedTargetHidden(t, pooled)
		})
	}

	t.Run("killed target, POST retried after connect failure", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		victim, survivor := ts[0], ts[1]
		p := startProxy(t, balanceConfig("retries: 1", ts...)+"admin: {address: 127.0.0.1:0}\n")
		c := newLBClient(t, p.addr)
		victim.up.Close()
		for i := range 6 { // within the budget's reserve
			r, err := c.do(http.MethodPost, "/")
			if err != nil || r.status != http.StatusOK || r.target != survivor.name {
				t.Errorf("POST %d: status %d from %q, error %v; want 200 from %s", i, r.status, r.target, err, survivor.name)
			}
		}
		if got := survivor.posts.Load(); got != 6 {
			t.Errorf("%s got %d POSTs; want 6", survivor.name, got)
		}
		// Each attempt on the victim (no answer: code "0") was retried on
		// the survivor.
		failed := counted(t, p, "rampart_upstream_requests_total", "code", "0")
		retried := counted(t, p, "rampart_upstream_retries_total", "reason", "other_target")
		if failed == 0 || retried != failed {
			t.Errorf("other_target retries counted: %v, for %v attempts without an answer; want as many, and some", retried, failed)
		}
	})

	t.Run("POST not retried after 503", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		busy, fine := ts[0], ts[1]
		busy.status.Store(http.StatusServiceUnavailable)
		p := startProxy(t, balanceConfig("retries: 1", ts...))
		c := newLBClient(t, p.addr)

		statuses := map[int]int{}
		for range 10 {
			r, err := c.do(http.MethodPost, "/")
			if err != nil {
				t.Fatal(err)
			}
			statuses[r.status]++
		}
		if statuses[503] != 5 || statuses[200] != 5 {
			t.Errorf("POST statuses %v; want five 503 (relayed, not retried) and five 200", statuses)
		}
		if b, f := busy.posts.Load(), fine.posts.Load(); b != 5 || f != 5 {
			t.Errorf("POSTs received: %s %d, %s %d; want 5 and 5 (no retry)", busy.name, b, fine.name, f)
		}
		// GETs, by contrast: each 503 is retried on the other target.
		got := c.counts(10, "/")
		if got[fine.name] != 10 || fine.hits.Load() != 15 || busy.hits.Load() == 5 {
			t.Errorf("GETs: %v, %s received %d, %s %d; want all 10 answered by %s (5 POSTs + 10 GETs), some tried on %s first",
				got, busy.name, busy.hits.Load(), fine.name, fine.hits.Load(), fine.name, busy.name)
		}
	})

	t.Run("budget bounds retries", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		victim, survivor := ts[0], ts[1]
		p := startProxy(t, balanceConfig("retries: 1", ts...))
		c := newLBClient(t, p.addr)
		// A target that answers 503: each retry of it costs the survivor
		// a request, so the budget bounds them. (A target that refuses
		// connections is retried without spending the budget: nothing
		// reached it, and the retry costs the survivor nothing extra.)
		victim.status.Store(http.StatusServiceUnavailable)

		const n = 100
		ok, failed := 0, 0
		for range n {
			r, err := c.do(http.MethodGet, "/")
			switch {
			case err != nil:
				t.Fatal(err)
			case r.status == http.StatusOK:
				ok++
			case r.status == http.StatusServiceUnavailable:
				failed++
			default:
				t.Fatalf("status %d; want 200 or 503", r.status)
			}
		}
		// Without outlier detection the dead target keeps being picked;
		// the budget (a reserve of 10 retries plus a fifth of the traffic)
		// runs out, and then some requests fail rather than doubling the
		// load on the survivor.
		if failed == 0 || ok < n/2 {
			t.Errorf("%d answered, %d failed; want some failures once the budget is spent, and at least %d answered",
				ok, failed, n/2)
		}
		t.Logf("failing target, no ejection: %d of %d answered, %d failed", ok, n, failed)
		if got := survivor.hits.Load(); got != int64(ok) {
			t.Errorf("%s served %d; want %d", survivor.name, got, ok)
		}
	})
}

// killedTargetHidden: with retries: 1 and passive ejection, GETs after a
// target is killed (its listener and connections closed) all succeed, with
// pooled idle connections to the dead target in the proxy's pool.
func killedTargetHidden(t *testing.T, pooled int) {
	ts := startBalTargets(t, 2)
	victim, survivor := ts[0], ts[1]
	p := startProxy(t, balanceConfig(`
retries: 1
passive: {max_failures: 3, ejection: 30s}`, ts...))
	c := newLBClient(t, p.addr)
	warm(t, c, pooled, 8*pooled)
	if n := victim.up.conns.Load(); n < int64(min(pooled, 2)) {
		t.Logf("warm-up opened %d connections to %s; want %d", n, victim.name, pooled)
	}
	victim.up.Close()

	got := map[string]int{}
	for i := range 100 {
		r, err := c.do(http.MethodGet, "/")
		if err != nil || r.status != http.StatusOK {
			t.Errorf("GET %d after the kill: status %d (%q), error %v; want 200", i, r.status, r.body, err)
			continue
		}
		got[r.target]++
	}
	if got[survivor.name] != 100 {
		t.Errorf("after the kill: %v; want all 100 on %s", got, survivor.name)
	}
}

// warm sends n rounds of k concurrent GETs, so that the proxy pools several
// connections to each target.
func warm(t *testing.T, c *lbClient, k, n int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n / k {
				if r, err := c.do(http.MethodGet, "/"); err != nil || r.status != http.StatusOK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d warm-up requests failed", failed.Load())
	}
}

// TestE2EBalanceSplit: a 10/90 split within tolerance, and a split with
// sticky pools keeps each client on its side.
func TestE2EBalanceSplit(t *testing.T) {
	canary := []*balTarget{startBalTarget(t, "canary0"), startBalTarget(t, "canary1")}
	stable := []*balTarget{startBalTarget(t, "stable0"), startBalTarget(t, "stable1")}
	for _, sticky := range []bool{false, true} {
		extra := ""
		if sticky {
			extra = "    sticky: {cookie: side}\n"
		}
		p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  canary:
%s    targets:
%s
  stable:
%s    targets:
%s
routes:
  - name: all
    split: [{upstream: canary, weight: 10}, {upstream: stable, weight: 90}]
access_log:
  path: "off"
`, extra, targetURLs(canary...), extra, targetURLs(stable...)))
		c := newLBClient(t, p.addr)

		if !sticky {
			t.Run("10/90", func(t *testing.T) {
				got := c.counts(1000, "/")
				n := got["canary0"] + got["canary1"]
				// sd = sqrt(1000 * 0.1 * 0.9) = 9.5
				if !within(n, 100, 40) || n+got["stable0"]+got["stable1"] != 1000 {
					t.Errorf("%v: %d on canary; want 100 ± 40 of 1000", got, n)
				}
			})
			continue
		}
		t.Run("sticky", func(t *testing.T) {
			sides := map[string]int{}
			for i := 0; i < 400 && (sides["canary"] < 3 || sides["stable"] < 3); i++ {
				first := c.get("/") // a new client
				ck := cookieNamed(first.cookies, "side")
				if first.status != http.StatusOK || ck == nil {
					t.Fatalf("status %d, cookies %v; want 200 and the cookie side", first.status, first.cookies)
				}
				side := strings.TrimRight(first.target, "01")
				sides[side]++
				got := c.counts(10, "/", "Cookie", "side="+ck.Value)
				if len(got) != 1 || got[first.target] != 10 {
					t.Fatalf("client first served by %s then by %v; want all on %s", first.target, got, first.target)
				}
			}
			if sides["canary"] < 3 || sides["stable"] < 3 {
				t.Errorf("new clients per side %v; want some on each", sides)
			}
		})
	}
}

// TestE2EBalanceNoTarget: a pool whose every target is down by active
// checks answers 503 at once, with a clear body, without trying them; one
// whose every target is passively ejected still tries them (panic mode).
func TestE2EBalanceNoTarget(t *testing.T) {
	t.Run("all down by active checks", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		for _, bt := range ts {
			bt.health.Store(http.StatusServiceUnavailable)
			bt.delay.Store(int64(2 * time.Second)) // a request that reached one would be slow
		}
		p := startProxy(t, balanceConfig(`
health_check: {path: /health, interval: 50ms, timeout: 40ms, healthy_threshold: 1, unhealthy_threshold: 1}`, ts...))
		if !waitFor(e2eTimeout, func() bool {
			return !targetState(p, "app", 0).Healthy() && !targetState(p, "app", 1).Healthy()
		}) {
			t.Fatal("the targets are not marked down")
		}
		c := newLBClient(t, p.addr)
		for i := range 5 {
			r := c.get("/")
			if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "no healthy upstream target") {
				t.Errorf("request %d: status %d, body %q; want 503 naming the lack of a healthy target", i, r.status, r.body)
			}
			if r.elapsed > 500*time.Millisecond {
				t.Errorf("request %d: the 503 took %s; want it at once", i, r.elapsed)
			}
		}
		for _, bt := range ts {
			if n := bt.hits.Load(); n != 0 {
				t.Errorf("%s received %d requests while down; want none", bt.name, n)
			}
		}
		// Back up: served again.
		for _, bt := range ts {
			bt.health.Store(0)
			bt.delay.Store(0)
		}
		if !waitFor(e2eTimeout, func() bool { return c.get("/").status == http.StatusOK }) {
			t.Error("never served again after the targets recovered")
		}
	})

	t.Run("all passively ejected: panic mode", func(t *testing.T) {
		ts := startBalTargets(t, 2)
		for _, bt := range ts {
			bt.status.Store(http.StatusInternalServerError)
		}
		p := startProxy(t, balanceConfig(`
passive: {max_failures: 1, ejection: 30s, max_ejection_percent: 100}`, ts...))
		c := newLBClient(t, p.addr)
		for range 2 {
			if r := c.get("/"); r.status != http.StatusInternalServerError {
				t.Fatalf("status %d; want the targets' 500", r.status)
			}
		}
		now := time.Now()
		if !targetState(p, "app", 0).Ejected(now) || !targetState(p, "app", 1).Ejected(now) {
			t.Fatal("the targets are not both ejected")
		}
		for _, bt := range ts {
			bt.status.Store(0)
		}
		got := c.counts(10, "/") // still ejected for 30s, but tried
		if got["t0"]+got["t1"] != 10 {
			t.Errorf("panic mode: %v; want all 10 served by the ejected targets", got)
		}
	})
}
