package proxy

// Hostile clients over real sockets: each is cut off by a limit or a
// timeout an operator sets, none stops other clients from being served, and
// each leaves a trace in /metrics that an operator can watch.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hostileConfig is oneUpstreamConfig with an admin listener (no token) for
// /metrics.
func hostileConfig(target, limits string) string {
	return oneUpstreamConfig(target, "limits:\n"+indent(limits, 2), "", "admin:\n  address: 127.0.0.1:0\n")
}

// scrapeMetrics returns the admin listener's /metrics text.
func scrapeMetrics(t *testing.T, p *testProxy) string {
	t.Helper()
	admin := p.srv.AdminAddr()
	if admin == "" {
		t.Fatal("no admin listener")
	}
	c := &http.Client{Timeout: e2eTimeout}
	resp, err := c.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricSum adds the values of every sample of name whose labels include
// labels. found is false when no sample matched.
func metricSum(text, name string, labels map[string]string) (sum float64, found bool) {
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, lbls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		have := parseLabels(strings.TrimSuffix(lbls, "}"))
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		sum += f
		found = true
	}
	return sum, found
}

// parseLabels reads `a="x",b="y"` (values without escapes).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		v, rest, _ := strings.Cut(rest, `"`)
		m[k] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return m
}

// wantMetricAtLeast waits for the metric to reach min and reports it as
// missing (a gap an operator cannot watch) or too low.
func wantMetricAtLeast(t *testing.T, p *testProxy, name string, labels map[string]string, min float64, what string) {
	t.Helper()
	var got float64
	var found bool
	waitFor(3*time.Second, func() bool {
		got, found = metricSum(scrapeMetrics(t, p), name, labels)
		return found && got >= min
	})
	switch {
	case !found:
		t.Errorf("metric %s%v: missing; want it (>= %v) so that an operator can watch %s", name, labels, min, what)
	case got < min:
		t.Errorf("metric %s%v: got %v; want >= %v (%s)", name, labels, got, min, what)
	}
}

// keepServing sends a request on a fresh connection every few milliseconds
// until stop is closed and reports the first failure or slow answer.
func keepServing(addr string, stop <-chan struct{}) <-chan error {
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			start := time.Now()
			st, err := quickGet(addr, "/")
			if err != nil || st != 200 {
				errc <- fmt.Errorf("normal request %d: got %d, %v; want 200", i, st, err)
				return
			}
			if d := time.Since(start); d > 2*time.Second {
				errc <- fmt.Errorf("normal request %d took %v; want it served at once", i, d)
				return
			}
		}
	}()
	return errc
}

// quickGet sends one GET on a fresh connection and returns the status.
func quickGet(addr, path string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := readRawResponse(bufio.NewReader(c), "GET")
	if err != nil {
		return 0, err
	}
	return resp.status(), nil
}

// trickle writes prefix, then one byte of more every interval, until the
// peer stops it or stop is closed. It returns what the client read back
// and when the connection ended.
func trickle(c net.Conn, prefix, more string, interval time.Duration, stop <-chan struct{}) (answer string, ended time.Time) {
	done := make(chan struct{})
	var b []byte
	go func() {
		defer close(done)
		b, _ = io.ReadAll(c)
	}()
	_, _ = io.WriteString(c, prefix)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-done:
			return string(b), time.Now()
		case <-stop:
			_ = c.Close()
			<-done
			return string(b), time.Now()
		case <-tick.C:
			if _, err := c.Write([]byte{more[i%len(more)]}); err != nil {
				<-done
				return string(b), time.Now()
			}
		}
	}
}

// TestE2EHostileSlowlorisMany runs many slowloris clients at once (headers a
// byte at a time): each is cut by read_header_timeout with 408 while a
// normal client keeps being served, and the timeouts are counted.
func TestE2EHostileSlowlorisMany(t *testing.T) {
	const slow = 50
	const timeout = 400 * time.Millisecond
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, hostileConfig(up.addr(), "read_header_timeout: 400ms"))

	stop := make(chan struct{})
	served := keepServing(p.addr, stop)
	var wg sync.WaitGroup
	results := make([]string, slow)
	took := make([]time.Duration, slow)
	giveUp := make(chan struct{})
	time.AfterFunc(e2eTimeout, func() { close(giveUp) })
	for i := 0; i < slow; i++ {
		c := dialRaw(t, p.addr).conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			ans, end := trickle(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ", "abcdefgh", 20*time.Millisecond, giveUp)
			results[i], took[i] = ans, end.Sub(start)
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-served; err != nil {
		t.Errorf("during the slowloris: %v", err)
	}
	for i := range results {
		if !strings.HasPrefix(results[i], "HTTP/1.1 408 ") {
			t.Errorf("slow client %d: got %q; want 408", i, firstLine(results[i]))
		}
		if took[i] > 3*timeout+time.Second {
			t.Errorf("slow client %d cut after %v; want about read_header_timeout (%v)", i, took[i], timeout)
		}
	}
	if n := up.count(); n == 0 {
		t.Errorf("the upstream served no normal request during the slowloris")
	}
	wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "header"}, slow,
		"requests cut by read_header_timeout")
}

// TestE2EHostileSlowBody sends request bodies a byte at a time: read_timeout
// cuts each with 408, whether the body is read whole (small) or streamed to
// the upstream (large), while other clients are served; the timeouts are
// counted.
func TestE2EHostileSlowBody(t *testing.T) {
	tests := []struct {
		name   string
		length int
		sent   int // body bytes sent at once before the trickle
	}{
		{"small body read whole", 1000, 10},
		{"large body streamed", 1 << 20, 100 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 500 * time.Millisecond
			up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				_, _ = io.WriteString(w, "ok")
			}))
			p := startProxy(t, hostileConfig(up.addr(), "read_timeout: 500ms"))
			stop := make(chan struct{})
			served := keepServing(p.addr, stop)

			c := dialRaw(t, p.addr).conn
			giveUp := make(chan struct{})
			defer time.AfterFunc(e2eTimeout, func() { close(giveUp) }).Stop()
			prefix := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", tt.length, strings.Repeat("b", tt.sent))
			start := time.Now()
			ans, end := trickle(c, prefix, "b", 50*time.Millisecond, giveUp)
			close(stop)
			if err := <-served; err != nil {
				t.Errorf("during the slow body: %v", err)
			}
			if !strings.HasPrefix(ans, "HTTP/1.1 408 ") {
				t.Errorf("slow body: got %q; want 408 Request Timeout", firstLine(ans))
			}
			if d := end.Sub(start); d > 3*timeout+time.Second {
				t.Errorf("slow body cut after %v; want about read_timeout (%v)", d, timeout)
			}
			wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "body"}, 1,
				"requests cut by read_timeout")
		})
	}
}

// dialSmallWindow connects with a small receive buffer, so that a client
// that does not read stalls the sender quickly.
func dialSmallWindow(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: e2eTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestE2EHostileNeverReadingClient asks for a large response and never reads
// it: write_timeout cuts the connection, other clients are served meanwhile,
// and the timeout is counted.
func TestE2EHostileNeverReadingClient(t *testing.T) {
	const timeout = 500 * time.Millisecond
	chunk := []byte(strings.Repeat("z", 32<<10))
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/large" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		rc := http.NewResponseController(w)
		for i := 0; i < 8192; i++ { // at most 256 MiB
			_ = rc.SetWriteDeadline(time.Now().Add(e2eTimeout))
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	p := startProxy(t, hostileConfig(up.addr(), "write_timeout: 500ms"))
	c := dialSmallWindow(t, p.addr)
	if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := make(chan struct{})
	served := keepServing(p.addr, stop)
	// The proxy closes the connection: the listener's open connections,
	// the stalled one and the short-lived normal ones, drop to zero.
	cut := waitFor(3*timeout+3*time.Second, func() bool {
		n, _ := metricSum(scrapeMetrics(t, p), "rampart_active_connections", map[string]string{"listener": "web"})
		return n <= 1 && time.Since(start) > timeout/2 && connClosedByProxy(c)
	})
	close(stop)
	if err := <-served; err != nil {
		t.Errorf("while a client did not read: %v", err)
	}
	if !cut {
		t.Fatalf("a client that never reads: got its connection open after %v; want it cut by write_timeout (%v)", time.Since(start), timeout)
	}
	wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "write"}, 1,
		"responses cut by write_timeout")
}

// connClosedByProxy reports whether the peer has closed c: reading what was
// sent ends in EOF or a reset within a short time.
func connClosedByProxy(c net.Conn) bool {
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return false
			}
			return true
		}
	}
}

// TestE2EHostileIdleFlood opens thousands of idle connections: max_connections
// refuses those beyond it at accept (a fresh normal client too), the
// connections already open keep working, and both the open and the refused
// connections are visible in /metrics.
func TestE2EHostileIdleFlood(t *testing.T) {
	const limit = 1500
	const beyond = 300
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, hostileConfig(up.addr(), fmt.Sprintf("max_connections: %d\nread_header_timeout: 30s\nidle_timeout: 30s", limit)))

	existing := dialRaw(t, p.addr)
	if got := existing.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(); got != 200 {
		t.Fatalf("existing client: got %d; want 200", got)
	}
	flood := make([]net.Conn, 0, limit+beyond)
	defer func() {
		for _, c := range flood {
			_ = c.Close()
		}
	}()
	for i := 0; i < limit-1; i++ {
		c, err := net.DialTimeout("tcp", p.addr, e2eTimeout)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		flood = append(flood, c)
	}
	if !waitFor(5*time.Second, func() bool {
		n, _ := metricSum(scrapeMetrics(t, p), "rampart_active_connections", map[string]string{"listener": "web"})
		return n == limit
	}) {
		n, _ := metricSum(scrapeMetrics(t, p), "rampart_active_connections", map[string]string{"listener": "web"})
		t.Fatalf("rampart_active_connections: got %v; want %d (the limit)", n, limit)
	}

	refused := 0
	for i := 0; i < beyond; i++ {
		c, err := net.DialTimeout("tcp", p.addr, e2eTimeout)
		if err != nil {
			continue // refused by the kernel: as good
		}
		flood = append(flood, c)
		if connClosedWithin(c, 2*time.Second) {
			refused++
		}
	}
	if refused != beyond {
		t.Errorf("connections beyond max_connections: %d of %d closed at accept; want all", refused, beyond)
	}
	if st, err := quickGet(p.addr, "/"); err == nil {
		t.Errorf("a fresh normal client beyond the limit: got %d; want the connection refused", st)
	}
	for i := 0; i < 3; i++ {
		if got := existing.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(); got != 200 {
			t.Errorf("existing client during the flood, request %d: got %d; want 200", i, got)
		}
	}
	wantMetricAtLeast(t, p, "rampart_connections_refused_total", map[string]string{"listener": "web", "reason": "max_connections"}, beyond+1,
		"connections refused by max_connections")
}

// connClosedWithin reports whether the peer closes c within d.
func connClosedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return err != nil && !isTimeoutErr(err)
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestE2EHostileHeaderLimits sends oversized headers and too many headers:
// each is refused with 431 before anything reaches the upstream, a header
// just within the limit passes, other clients are served, and the refusals
// (and those of malformed requests, 400) are counted.
func TestE2EHostileHeaderLimits(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, hostileConfig(up.addr(), "max_header_bytes: 4KiB"))
	many := strings.Builder{}
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&many, "X-H%d: v\r\n", i)
	}
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"one large header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"many headers", "GET / HTTP/1.1\r\nHost: x\r\n" + many.String() + "\r\n", 431},
		{"a header far beyond the read buffer", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 100<<10) + "\r\n\r\n", 431},
		{"just within the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 3<<10) + "\r\n\r\n", 200},
		{"malformed header", "GET / HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n", 400},
	}
	refused := map[int]int{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := up.count()
			c := dialRaw(t, p.addr)
			resp := c.roundTrip(tt.raw)
			if got := resp.status(); got != tt.want {
				t.Errorf("got %d; want %d", got, tt.want)
			}
			if tt.want != 200 {
				refused[tt.want]++
				if up.count() != before {
					t.Errorf("the refused request reached the upstream")
				}
				if !c.closedByPeer(2 * time.Second) {
					t.Errorf("connection after %d: got open; want closed", tt.want)
				}
			}
			if st, err := quickGet(p.addr, "/"); err != nil || st != 200 {
				t.Errorf("another client after it: got %d, %v; want 200", st, err)
			}
		})
	}
	// Requests the connection loop refuses never reach a route: they
	// belong under the no-route label of rampart_requests_total.
	for code, n := range refused {
		wantMetricAtLeast(t, p, "rampart_requests_total", map[string]string{"route": noRouteLabel, "code": strconv.Itoa(code)}, float64(n),
			fmt.Sprintf("requests refused with %d before routing (max_header_bytes, malformed requests)", code))
	}
}

// TestE2EHostileClientCannotEjectTarget sends requests that fail through the
// client's fault (an HTTP/1.0 request without Host, which the proxy cannot
// write upstream as it is): they must not count as the target's failures,
// or any client could eject every target with passive health on.
func TestE2EHostileClientCannotEjectTarget(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), false })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "passive: {max_failures: 2, ejection: 30s}", ""))
	for i := 0; i < 4; i++ {
		c := dialRaw(t, p.addr)
		resp := c.roundTrip("GET / HTTP/1.0\r\n\r\n")
		if st := resp.status(); st >= 500 {
			t.Errorf("HTTP/1.0 request without Host %d: got %d; want 200 (a Host made for the upstream) or 400", i, st)
		}
	}
	for _, us := range p.srv.UpstreamStatus() {
		for _, ts := range us.Targets {
			if ts.Ejected {
				t.Errorf("target %s: ejected after requests that failed by the client's fault; want it kept", ts.Address)
			}
		}
	}
	if got := rawGet(t, p.addr, "x", "/").status(); got != 200 {
		t.Errorf("a normal request after them: got %d; want 200", got)
	}
}
