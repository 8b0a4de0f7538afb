package proxy

// End-to-end tests of rate limiting through the proxy: exact counts, the
// Retry-After and IETF RateLimit headers, every kind of key, trusted
// proxies, two instances sharing one real redis-server, and Redis killed or
// hung and brought back under both on_store_error settings. The exact-clock
// tests of the algorithm live in package ratelimit; these use the real clock
// with margins, or a rate of 1/m so that nothing refills during a test.

import (
	"bufio"
	"fmt"
	"github.com/rampart-proxy/rampart/internal/testredis"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// storeLatencyBound is the most a request may take while Redis is down or
// hung: the default redis.timeout (50 ms) plus a margin for a loaded
// machine and the race detector.
const storeLatencyBound = 50*time.Millisecond + 150*time.Millisecond

// limitConfig is a listener "web", an upstream "app" with one target and
// four routes: "limited" (catch-all) and "other" (/other) upstream routes
// and "canned" (/canned), a respond route, all under the policy "lim"
// (policy is its YAML body), and "free" (/free) without a limit.
func limitConfig(target, policy, extraTop string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://%s
rate_limits:
  lim:
%s
routes:
  - name: limited
    upstream: app
    rate_limit: lim
  - name: other
    match: {path_prefix: /other}
    upstream: app
    rate_limit: lim
  - name: canned
    match: {path_prefix: /canned}
    respond: {status: 200, body: "canned"}
    rate_limit: lim
  - name: free
    match: {path_prefix: /free}
    upstream: app
access_log:
  path: "off"
%s
`, target, indent(policy, 4), extraTop)
}

// redisConfig is the redis section for a server at addr, keys under "e2e:".
func redisConfig(addr string) string {
	return fmt.Sprintf("redis:\n  address: %s\n  key_prefix: \"e2e:\"\n", addr)
}

// okUpstream is a raw upstream answering 200 "ok" to everything.
func okUpstream(t *testing.T) *rawUpstream {
	return startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
}

// dialFrom connects to addr from the loopback address from (any 127/8
// address works on Linux), so that tests can be several clients.
func dialFrom(addr, from string) (net.Conn, error) {
	d := net.Dialer{Timeout: e2eTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	return c, nil
}

// getReq is a GET of path with extra header lines.
func getReq(path string, headers ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: example.com\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// tryGet sends a GET over a new connection from the address from and
// returns the response and how long it took. It is safe in goroutines.
func tryGet(addr, from, path string, headers ...string) (*rawMessage, time.Duration, error) {
	start := time.Now()
	c, err := dialFrom(addr, from)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, getReq(path, headers...)); err != nil {
		return nil, 0, err
	}
	m, err := readRawResponse(bufio.NewReader(c), "GET")
	return m, time.Since(start), err
}

// getFrom is tryGet failing t on a transport error.
func getFrom(t *testing.T, addr, from, path string, headers ...string) *rawMessage {
	t.Helper()
	m, _, err := tryGet(addr, from, path, headers...)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, from, err)
	}
	return m
}

// wantStatuses sends one GET per entry of want, from the address from, and
// checks each status.
func wantStatuses(t *testing.T, addr, from, path string, want []int, headers ...string) {
	t.Helper()
	for i, w := range want {
		if got := getFrom(t, addr, from, path, headers...).status(); got != w {
			t.Fatalf("request %d of %s from %s %v: status %d; want %d (want %v)", i+1, path, from, headers, got, w, want)
		}
	}
}

// repeat returns n copies of status.
func repeat(status, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = status
	}
	return s
}

// checkLimitHeaders checks the RateLimit-Policy and RateLimit fields of m
// (each present once) and, on a 429 or 503, Retry-After.
func checkLimitHeaders(t *testing.T, m *rawMessage, wantPolicy, wantLimit string) {
	t.Helper()
	if v, n := m.get("RateLimit-Policy"); n != 1 || v != wantPolicy {
		t.Errorf("%s: RateLimit-Policy = %q (%d fields); want %q once", m.first, v, n, wantPolicy)
	}
	if v, n := m.get("RateLimit"); n != 1 || v != wantLimit {
		t.Errorf("%s: RateLimit = %q (%d fields); want %q once", m.first, v, n, wantLimit)
	}
	ra, n := m.get("Retry-After")
	switch m.status() {
	case 429, 503:
		if secs, err := strconv.Atoi(ra); n != 1 || err != nil || secs < 1 {
			t.Errorf("%s: Retry-After = %q (%d fields); want one integer >= 1", m.first, ra, n)
		}
	default:
		if n != 0 {
			t.Errorf("%s: Retry-After = %q on an allowed response", m.first, ra)
		}
	}
}

// TestE2ERateLimitExactCount: at 5/s with a burst of 5, exactly 5 requests
// pass, the 6th is refused with 429 and Retry-After: 1, and once 1/rate has
// passed exactly one more passes. The real clock is used: an attempt whose
// requests took longer than the margins allow is repeated from another
// client address (a new key).
func TestE2ERateLimitExactCount(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "rate: 5/s\nburst: 5", ""))

	const interval = 200 * time.Millisecond // 1/rate
	for attempt := 0; attempt < 3; attempt++ {
		from := fmt.Sprintf("127.0.0.%d", 10+attempt)
		before := up.count()
		conn, err := dialFrom(p.addr, from)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}

		t0 := time.Now()
		var got []*rawMessage
		var firstDone time.Time
		for i := 0; i < 6; i++ {
			got = append(got, c.roundTrip(getReq("/")))
			if i == 0 {
				firstDone = time.Now()
			}
		}
		burstTook := time.Since(t0)
		// One interval after the first decision, one request passes; the
		// next is refused unless another interval has passed.
		time.Sleep(time.Until(firstDone.Add(interval + 50*time.Millisecond)))
		got = append(got, c.roundTrip(getReq("/")))
		got = append(got, c.roundTrip(getReq("/")))
		allTook := time.Since(t0)
		if burstTook > interval*3/4 || allTook > 2*interval-10*time.Millisecond {
			t.Logf("attempt %d: too slow for the real-clock margins (burst %v, all %v); again", attempt, burstTook, allTook)
			continue
		}

		want := []int{200, 200, 200, 200, 200, 429, 200, 429}
		for i, m := range got {
			if m.status() != want[i] {
				t.Fatalf("request %d: status %d; want %d (want %v)", i+1, m.status(), want[i], want)
			}
		}
		for i := 0; i < 5; i++ {
			checkLimitHeaders(t, got[i], `"lim";q=5;w=1`, fmt.Sprintf(`"lim";r=%d;t=1`, 4-i))
		}
		checkLimitHeaders(t, got[5], `"lim";q=5;w=1`, `"lim";r=0;t=1`)
		if ra, _ := got[5].get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After = %q; want \"1\" (200 ms rounded up)", ra)
		}
		if string(got[5].body) != string(bodyTooManyRequests) {
			t.Errorf("429 body = %q; want %q", got[5].body, bodyTooManyRequests)
		}
		if n := up.count() - before; n != 6 {
			t.Errorf("upstream received %d requests; want 6 (the allowed ones only)", n)
		}
		return
	}
	t.Fatal("three attempts were too slow for the real-clock margins")
}

// TestE2ERateLimitHeaders checks RateLimit-Policy and RateLimit on allowed
// answers, forwarded and produced by the proxy (a respond route), and on
// refusals with Retry-After, at 1/m with a burst of 3 so that the values
// are exact. The target sends fields of its own, in lower case: on a
// limited route the proxy's replace them, and a route without a limit
// leaves them as they are and adds none.
func TestE2ERateLimitHeaders(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) {
		return "HTTP/1.1 200 OK\r\nratelimit-policy: \"up\";q=9\r\nratelimit: \"up\";r=8\r\nContent-Length: 2\r\n\r\nok", false
	})
	p := startProxy(t, limitConfig(up.addr(), "rate: 1/m\nburst: 3", ""))

	const policy = `"lim";q=3;w=180` // 3 requests, refilled from empty in 180 s
	for _, path := range []string{"/", "/canned"} {
		t.Run(path, func(t *testing.T) {
			from := "127.0.0.20"
			if path != "/" {
				from = "127.0.0.21"
			}
			// r: requests left; t: seconds until the bucket is full, or,
			// once r is 0, until one more passes.
			for i, want := range []string{`"lim";r=2;t=60`, `"lim";r=1;t=120`, `"lim";r=0;t=60`} {
				m := getFrom(t, p.addr, from, path)
				if m.status() != 200 {
					t.Fatalf("request %d: status %d; want 200", i+1, m.status())
				}
				checkLimitHeaders(t, m, policy, want)
			}
			m := getFrom(t, p.addr, from, path)
			if m.status() != 429 {
				t.Fatalf("request 4: status %d; want 429", m.status())
			}
			checkLimitHeaders(t, m, policy, `"lim";r=0;t=60`)
			if ra, _ := m.get("Retry-After"); ra != "60" {
				t.Errorf("Retry-After = %q; want \"60\"", ra)
			}
		})
	}

	m := getFrom(t, p.addr, "127.0.0.22", "/free")
	checkLimitHeaders(t, m, `"up";q=9`, `"up";r=8`) // the target's, alone
	if v, n := m.get("Retry-After"); n != 0 {
		t.Errorf("route without a limit: Retry-After = %q; want none", v)
	}
	if m.status() != 200 {
		t.Errorf("route without a limit: status %d; want 200", m.status())
	}
}

// TestE2ERateLimitBeforeUpstream: refused requests never reach the
// upstream.
func TestE2ERateLimitBeforeUpstream(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "rate: 1/m\nburst: 5", ""))
	c := dialRaw(t, p.addr)
	counts := map[int]int{}
	for i := 0; i < 25; i++ {
		counts[c.roundTrip(getReq("/")).status()]++
	}
	if counts[200] != 5 || counts[429] != 20 {
		t.Errorf("statuses %v; want 5 x 200 and 20 x 429", counts)
	}
	if n := up.count(); n != 5 {
		t.Errorf("upstream received %d requests; want 5", n)
	}
}

// TestE2ERateLimitKeyHeader: header:X-API-Key counts each key apart,
// whatever the client's address, and a request without the header (or
// with an empty one) is counted under its client address.
func TestE2ERateLimitKeyHeader(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 2", ""))

	wantStatuses(t, p.addr, "127.0.0.1", "/", []int{200, 200, 429}, "X-API-Key: alpha")
	wantStatuses(t, p.addr, "127.0.0.1", "/", []int{200, 200, 429}, "X-API-Key: beta")
	// The key, not the address, is counted.
	wantStatuses(t, p.addr, "127.0.0.2", "/", []int{429}, "X-API-Key: alpha")
	// Without the header: the client address.
	wantStatuses(t, p.addr, "127.0.0.1", "/", []int{200, 200, 429})
	wantStatuses(t, p.addr, "127.0.0.2", "/", []int{200})
	wantStatuses(t, p.addr, "127.0.0.2", "/", []int{200, 429}, "X-API-Key:")
	if n := up.count(); n != 8 {
		t.Errorf("upstream received %d requests; want 8", n)
	}
}

// TestE2ERateLimitHeaderKeyApartFromClientIP: with header:NAME, a client
// that sends another client's address as its API key must not spend that
// client's budget (requests without the header are counted under their
// address). The two kinds of key need separate name spaces.
func TestE2ERateLimitHeaderKeyApartFromClientIP(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 2", ""))

	// 127.0.0.31 sends the address of 127.0.0.32 as its API key.
	wantStatuses(t, p.addr, "127.0.0.31", "/", []int{200, 200, 429}, "X-API-Key: 127.0.0.32")
	// 127.0.0.32, without a key, still has its whole budget.
	for i := 0; i < 2; i++ {
		if got := getFrom(t, p.addr, "127.0.0.32", "/").status(); got != 200 {
			t.Fatalf("request %d of 127.0.0.32 without an API key: status %d; want 200: "+
				"another client spent its budget by sending its address as X-API-Key", i+1, got)
		}
	}
}

// TestE2ERateLimitKeyRoute: key route counts every client of a route
// together, each route apart.
func TestE2ERateLimitKeyRoute(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: route\nrate: 1/m\nburst: 3", ""))

	wantStatuses(t, p.addr, "127.0.0.1", "/a", []int{200})
	wantStatuses(t, p.addr, "127.0.0.2", "/b", []int{200}, "X-API-Key: x")
	wantStatuses(t, p.addr, "127.0.0.3", "/c", []int{200, 429})
	wantStatuses(t, p.addr, "127.0.0.4", "/d", []int{429})
	// Another route under the same policy has its own count.
	wantStatuses(t, p.addr, "127.0.0.4", "/other", []int{200, 200, 200, 429})
	wantStatuses(t, p.addr, "127.0.0.1", "/free", repeat(200, 5))
}

// TestE2ERateLimitTrustedProxies: client_ip is the peer unless the peer is
// in trusted_proxies; then the right-most X-Forwarded-For hop that is not
// trusted. A client that is not a trusted proxy cannot change its key with
// the header.
func TestE2ERateLimitTrustedProxies(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: client_ip\nrate: 1/m\nburst: 2",
		"trusted_proxies: [127.0.0.1, 10.0.0.0/8]"))

	t.Run("untrusted peer", func(t *testing.T) {
		// 127.0.0.40 is not trusted: whatever it claims, it is 127.0.0.40.
		for i, xff := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "127.0.0.1", "10.0.0.1"} {
			want := 200
			if i >= 2 {
				want = 429
			}
			wantStatuses(t, p.addr, "127.0.0.40", "/", []int{want}, "X-Forwarded-For: "+xff)
		}
		// And the addresses it claimed were not charged.
		wantStatuses(t, p.addr, "127.0.0.1", "/", []int{200, 200, 429}, "X-Forwarded-For: 198.51.100.1")
	})

	t.Run("trusted peer", func(t *testing.T) {
		const from = "127.0.0.1" // trusted
		wantStatuses(t, p.addr, from, "/", []int{200}, "X-Forwarded-For: 203.0.113.7")
		// A spoofed hop to the left of the client's is ignored.
		wantStatuses(t, p.addr, from, "/", []int{200}, "X-Forwarded-For: 192.0.2.99, 203.0.113.7")
		// Trusted hops to its right are skipped.
		wantStatuses(t, p.addr, from, "/", []int{429}, "X-Forwarded-For: 203.0.113.7, 10.1.2.3")
		wantStatuses(t, p.addr, from, "/", []int{429}, "X-Forwarded-For: 192.0.2.98", "X-Forwarded-For: 203.0.113.7")
		// Another client behind the proxy has its own count.
		wantStatuses(t, p.addr, from, "/", []int{200, 200, 429}, "X-Forwarded-For: 203.0.113.8, 10.9.9.9")
		// The proxy itself, without the header.
		wantStatuses(t, p.addr, from, "/", []int{200, 200, 429})
	})
}

// e2eRedis is a redis-server process of one test (internal/testredis).
type e2eRedis struct{ *testredis.Server }

// startE2ERedis starts a redis-server and stops it when t ends. It skips t
// only when redis-server is not installed (make test installs it).
func startE2ERedis(t *testing.T) *e2eRedis {
	t.Helper()
	return &e2eRedis{testredis.Start(t)}
}

// exists reports whether Redis holds a key of policy "lim" for the client
// key key (stored as "e2e:lim:{" + the proxy's key for it + "}", whose exact
// form, such as a prefix per kind of key, is the proxy's business).
func (r *e2eRedis) exists(key string) bool {
	got, err := r.Do("KEYS", "e2e:lim:{*"+key+"}")
	return err == nil && strings.HasPrefix(got, "*") && got != "*0"
}

// TestE2ERateLimitRedisTwoInstances: two proxies sharing one redis-server
// enforce one limit: a burst of 10 across both, sequential and concurrent,
// and the RateLimit field counts down across instances.
func TestE2ERateLimitRedisTwoInstances(t *testing.T) {
	r := startE2ERedis(t)
	up := okUpstream(t)
	cfg := limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 10\nstore: redis", redisConfig(r.Addr))
	a, b := startProxy(t, cfg), startProxy(t, cfg)

	t.Run("sequential", func(t *testing.T) {
		for i := 0; i < 12; i++ {
			addr := []string{a.addr, b.addr}[i%2]
			m := getFrom(t, addr, "127.0.0.1", "/", "X-API-Key: seq")
			if i < 10 {
				if m.status() != 200 {
					t.Fatalf("request %d (instance %d): status %d; want 200", i+1, i%2, m.status())
				}
				if v, _ := m.get("RateLimit"); !strings.HasPrefix(v, fmt.Sprintf(`"lim";r=%d;`, 9-i)) {
					t.Errorf("request %d (instance %d): RateLimit = %q; want r=%d", i+1, i%2, v, 9-i)
				}
			} else if m.status() != 429 {
				t.Fatalf("request %d (instance %d): status %d; want 429", i+1, i%2, m.status())
			}
		}
		if !r.exists("seq") {
			t.Error("no key in Redis")
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		before := up.count()
		var mu sync.Mutex
		counts := map[int]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr := []string{a.addr, b.addr}[g%2]
				for i := 0; i < 6; i++ {
					m, _, err := tryGet(addr, "127.0.0.1", "/", "X-API-Key: par")
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					counts[m.status()]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if counts[200] != 10 || counts[429] != 38 {
			t.Errorf("48 requests over two instances: %v; want 10 x 200 and 38 x 429", counts)
		}
		if n := up.count() - before; n != 10 {
			t.Errorf("upstream received %d requests; want 10", n)
		}
	})
}

// timedGet is tryGet failing t on a transport error or when the request took
// longer than storeLatencyBound; it records the slowest request in *slowest.
func timedGet(t *testing.T, slowest *time.Duration, addr, path string, headers ...string) *rawMessage {
	t.Helper()
	m, took, err := tryGet(addr, "127.0.0.1", path, headers...)
	if err != nil {
		t.Fatalf("GET %s %v: %v", path, headers, err)
	}
	*slowest = max(*slowest, took)
	if took > storeLatencyBound {
		t.Errorf("GET %s %v took %v; want at most %v", path, headers, took, storeLatencyBound)
	}
	return m
}

// waitRecovered polls p (through requests with fresh keys, each of which
// must be answered 200 in time) until a decision reaches Redis again. It
// returns how long that took.
func waitRecovered(t *testing.T, r *e2eRedis, p *testProxy, slowest *time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for i := 0; time.Since(start) < 8*time.Second; i++ {
		key := fmt.Sprintf("probe-%s-%d", p.addr, i)
		if m := timedGet(t, slowest, p.addr, "/", "X-API-Key: "+key); m.status() != 200 {
			t.Fatalf("probe %d: status %d; want 200", i, m.status())
		}
		if r.exists(key) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("proxy %s did not use Redis again within 8 s", p.addr)
	return 0
}

// TestE2ERateLimitRedisDownAllow: with on_store_error: allow, killing Redis
// under two instances leaves each serving from its own memory limit (so up
// to twice the limit), no request slower than the timeout plus a margin;
// when Redis returns, both use it again and the shared limit applies.
func TestE2ERateLimitRedisDownAllow(t *testing.T) {
	r := startE2ERedis(t)
	up := okUpstream(t)
	cfg := limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 4\nstore: redis\non_store_error: allow", redisConfig(r.Addr))
	a, b := startProxy(t, cfg), startProxy(t, cfg)
	var slowest time.Duration
	shared := func(key string) {
		t.Helper()
		for i, p := range []*testProxy{a, b, a, b, a, b} {
			want := 200
			if i >= 4 {
				want = 429
			}
			if got := timedGet(t, &slowest, p.addr, "/", "X-API-Key: "+key).status(); got != want {
				t.Fatalf("shared limit, key %s, request %d: status %d; want %d", key, i+1, got, want)
			}
		}
		if !r.exists(key) {
			t.Errorf("key %s is not in Redis", key)
		}
	}
	shared("before")

	r.Kill()
	downStart := time.Now()
	// Each instance falls back to its own memory limit: 4 each, even for
	// the key already spent in Redis.
	for _, key := range []string{"before", "down"} {
		for _, p := range []*testProxy{a, b} {
			for i := 0; i < 6; i++ {
				want := 200
				if i >= 4 {
					want = 429
				}
				m := timedGet(t, &slowest, p.addr, "/", "X-API-Key: "+key)
				if m.status() != want {
					t.Fatalf("Redis down, key %s, proxy %s, request %d: status %d; want %d", key, p.addr, i+1, m.status(), want)
				}
			}
		}
	}
	t.Logf("24 requests with Redis down took %v; slowest request %v", time.Since(downStart), slowest)

	r.Restart()
	ta := waitRecovered(t, r, a, &slowest)
	tb := waitRecovered(t, r, b, &slowest)
	t.Logf("Redis back: instance a used it again after %v, b after %v more", ta, tb)
	shared("after")
	t.Logf("slowest request in the whole test: %v", slowest)
}

// TestE2ERateLimitRedisHungAllow: a Redis that stops answering (SIGSTOP)
// costs a request at most the timeout: later requests fall back without
// waiting, and decisions return to Redis once it runs again.
func TestE2ERateLimitRedisHungAllow(t *testing.T) {
	r := startE2ERedis(t)
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 2\nstore: redis", redisConfig(r.Addr)))
	var slowest time.Duration
	timedGet(t, &slowest, p.addr, "/", "X-API-Key: warm")

	r.Signal(syscall.SIGSTOP)
	start := time.Now()
	n, waited := 0, 0
	// Long enough for a probe after the first back-off (1 s).
	for ; time.Since(start) < 1300*time.Millisecond; n++ {
		var took time.Duration
		if m := timedGet(t, &took, p.addr, "/", fmt.Sprintf("X-API-Key: hung-%d", n)); m.status() != 200 {
			t.Fatalf("Redis hung, request %d: status %d; want 200", n+1, m.status())
		}
		slowest = max(slowest, took)
		if took >= 40*time.Millisecond {
			waited++
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d requests with Redis hung over %v; %d waited for the timeout; slowest %v", n, time.Since(start), waited, slowest)
	// The first request and the probe after 1 s wait; the others fall back
	// at once (one more allowed for a hiccup of the machine).
	if waited > 3 {
		t.Errorf("%d requests waited for the Redis timeout; want at most 3 (the first, the probe)", waited)
	}
	r.Signal(syscall.SIGCONT)
	t.Logf("Redis running again: used again after %v", waitRecovered(t, r, p, &slowest))
}

// TestE2ERateLimitRedisDownDeny: with on_store_error: deny, requests are
// refused with 503 and Retry-After while Redis is down, in time and without
// reaching the upstream; when Redis returns, the limit applies again.
func TestE2ERateLimitRedisDownDeny(t *testing.T) {
	r := startE2ERedis(t)
	up := okUpstream(t)
	p := startProxy(t, limitConfig(up.addr(), "key: header:X-API-Key\nrate: 1/m\nburst: 3\nstore: redis\non_store_error: deny", redisConfig(r.Addr)))
	var slowest time.Duration
	for i, want := range []int{200, 200, 200, 429} {
		if got := timedGet(t, &slowest, p.addr, "/", "X-API-Key: before").status(); got != want {
			t.Fatalf("Redis up, request %d: status %d; want %d", i+1, got, want)
		}
	}

	r.Kill()
	before := up.count()
	for i := 0; i < 10; i++ {
		m := timedGet(t, &slowest, p.addr, "/", fmt.Sprintf("X-API-Key: down-%d", i))
		if m.status() != 503 {
			t.Fatalf("Redis down, request %d: status %d; want 503", i+1, m.status())
		}
		if string(m.body) != string(bodyLimitUnavailable) {
			t.Errorf("503 body = %q; want %q", m.body, bodyLimitUnavailable)
		}
		checkLimitHeaders(t, m, `"lim";q=3;w=180`, `"lim";r=0;t=1`)
	}
	if n := up.count() - before; n != 0 {
		t.Errorf("upstream received %d requests while the limit store was down; want 0", n)
	}

	r.Restart()
	start := time.Now()
	for i := 0; ; i++ {
		m := timedGet(t, &slowest, p.addr, "/", "X-API-Key: after")
		if m.status() == 200 {
			break
		}
		if m.status() != 503 || time.Since(start) > 8*time.Second {
			t.Fatalf("after Redis returned, request %d (%v later): status %d; want 503 until it is used again, then 200",
				i+1, time.Since(start), m.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("Redis back: used again after %v", time.Since(start))
	for i, want := range []int{200, 200, 429} {
		if got := timedGet(t, &slowest, p.addr, "/", "X-API-Key: after").status(); got != want {
			t.Fatalf("Redis back, request %d: status %d; want %d", i+2, got, want)
		}
	}
	if !r.exists("after") {
		t.Error("key after is not in Redis")
	}
	t.Logf("slowest request: %v", slowest)
}
