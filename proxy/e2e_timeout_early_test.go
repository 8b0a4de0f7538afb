package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestE2EUpstreamTimeoutNotEarly: a configured upstream read timeout never
// fires before its time. The read deadline of a pooled connection is moved
// only when less than nine tenths of the timeout is left, so the deadline
// set for one request is kept for the next when it follows soon; it used to
// fire then up to a tenth of the timeout early (a 10 s read timeout
// answered 504 after 9.09 s). Here the timeout is 4 s, the second request
// follows the first by 300 ms (its kept deadline 3.7 s away) and the target
// answers it after 3.8 s: within the timeout, so 200, not 504. A target
// that takes longer than the timeout still gets 504.
func TestE2EUpstreamTimeoutNotEarly(t *testing.T) {
	if testing.Short() {
		t.Skip("waits about 9 s")
	}
	const (
		timeout = 4 * time.Second
		gap     = 300 * time.Millisecond
		slow    = timeout - 200*time.Millisecond
	)
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		switch {
		case strings.Contains(req.first, "/slow"):
			time.Sleep(slow)
		case strings.Contains(req.first, "/late"):
			time.Sleep(timeout + 500*time.Millisecond)
		}
		return okResponse("ok"), false
	})
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets: [{url: "http://%s"}]
    timeouts: {read: %s}
routes:
  - name: app
    upstream: app
access_log: {path: "off"}
`, up.addr(), timeout))
	c := dialRaw(t, p.addr)
	if r := c.roundTrip("GET /first HTTP/1.1\r\nHost: app.test\r\n\r\n"); r.status() != 200 {
		t.Fatalf("first request: got %d; want 200", r.status())
	}
	time.Sleep(gap)
	start := time.Now()
	if r := c.roundTrip("GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n"); r.status() != 200 {
		t.Errorf("answer after %s with a %s read timeout: got %d after %s; want 200",
			slow, timeout, r.status(), time.Since(start).Round(time.Millisecond))
	}
	if got := up.conns.Load(); got != 1 {
		t.Fatalf("upstream connections: got %d; want 1 (the second request must reuse the first's)", got)
	}
	start = time.Now()
	r := c.roundTrip("GET /late HTTP/1.1\r\nHost: app.test\r\n\r\n")
	if took := time.Since(start); r.status() != 504 || took < timeout {
		t.Errorf("a target slower than the timeout: got %d after %s; want 504 after at least %s", r.status(), took, timeout)
	}
}
