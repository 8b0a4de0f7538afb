package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// TestE2EConnectionLimits checks that max_connections and
// max_connections_per_ip refuse connections at accept time, before anything
// is read, and that a freed slot is usable again.
func TestE2EConnectionLimits(t *testing.T) {
	tests := []struct {
		name  string
		limit string
	}{
		{"max_connections", "max_connections: 2"},
		{"max_connections_per_ip", "max_connections_per_ip: 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
			p := startProxy(t, oneUpstreamConfig(up.addr(), "limits:\n  "+tt.limit, "", ""))
			a, b := dialRaw(t, p.addr), dialRaw(t, p.addr)
			for i, c := range []*rawClient{a, b} {
				if got := c.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(); got != 200 {
					t.Fatalf("connection %d: got %d; want 200", i, got)
				}
			}
			third := dialRaw(t, p.addr)
			if !third.closedByPeer(2 * time.Second) {
				t.Fatalf("third connection: got open; want closed at accept")
			}
			if n := up.count(); n != 2 {
				t.Errorf("requests at the upstream: got %d; want 2", n)
			}
			_ = a.conn.Close()
			// The slot is freed once the proxy sees the close.
			ok := waitFor(2*time.Second, func() bool {
				c := dialRaw(t, p.addr)
				defer c.conn.Close()
				if _, err := io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					return false
				}
				resp, err := readRawResponse(c.br, "GET")
				return err == nil && resp.status() == 200
			})
			if !ok {
				t.Errorf("after closing a connection: got no slot; want a new connection served")
			}
		})
	}
}

// TestE2ESlowloris sends a header a byte at a time: the header timeout cuts
// the connection with 408 while another client is served normally.
func TestE2ESlowloris(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "limits:\n  read_header_timeout: 300ms", "", ""))
	slow := dialRaw(t, p.addr)
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
			if _, err := slow.conn.Write([]byte{b}); err != nil {
				done <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		done <- nil
	}()
	if got := rawGet(t, p.addr, "x", "/").status(); got != 200 {
		t.Errorf("other client during the slowloris: got %d; want 200", got)
	}
	resp, err := readRawResponse(slow.br, "GET")
	elapsed := time.Since(start)
	if err != nil {
		if !slow.closedByPeer(time.Second) {
			t.Fatalf("slow client: got %v and an open connection; want 408 or a close", err)
		}
	} else if resp.status() != 408 {
		t.Errorf("slow client: got %d; want 408", resp.status())
	}
	if elapsed > 3*time.Second {
		t.Errorf("slow client cut after %v; want about the 300ms header timeout", elapsed)
	}
	<-done
}

// TestE2EIdleTimeout closes a keep-alive connection idle beyond idle_timeout.
func TestE2EIdleTimeout(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "limits:\n  idle_timeout: 200ms", "", ""))
	c := dialRaw(t, p.addr)
	if got := c.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(); got != 200 {
		t.Fatalf("first request: got %d; want 200", got)
	}
	start := time.Now()
	if !c.closedByPeer(3 * time.Second) {
		t.Fatalf("idle connection: got open after 3s; want closed after about 200ms")
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("idle connection closed after %v; want about 200ms", d)
	}
}

// TestE2EPipelinedWithBodies sends several POSTs in one write: each body is
// forwarded whole and the answers come back in order. The target keeps its
// connections: one that closed after each answer without saying so
// (Connection: close) races the next POST, which the proxy then sends on the
// pooled connection before the close arrives and, not idempotent, may not
// send again (502, as in nginx and net/http).
func TestE2EPipelinedWithBodies(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("got " + string(req.body)), false })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	var all strings.Builder
	bodies := []string{"one", strings.Repeat("b", 5000), "three"}
	for _, b := range bodies {
		all.WriteString("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(b)) + "\r\n\r\n" + b)
	}
	if _, err := io.WriteString(c.conn, all.String()); err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		resp, err := readRawResponse(c.br, "POST")
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if want := "got " + b; string(resp.body) != want {
			t.Errorf("response %d: got %d bytes; want %d", i, len(resp.body), len(want))
		}
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// TestE2EAnswerNotHeldByPartialPipeline: bytes after a request that do not
// make a whole request (here a POST body sent without Content-Length, which
// HTTP/1.1 reads as the start of the next request) must not hold back the
// answer to the request before them.
func TestE2EAnswerNotHeldByPartialPipeline(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c.conn, "POST / HTTP/1.1\r\nHost: x\r\n\r\n{\"id\":\"no length\"}"); err != nil {
		t.Fatal(err)
	}
	resp, err := readRawResponse(c.br, "POST")
	if err != nil {
		t.Fatalf("answer: %v; want it at once, not after the partial next request", err)
	}
	if resp.status() != 200 {
		t.Errorf("status: got %d; want 200", resp.status())
	}
}

// TestE2EAnswerBeforeTrailingBlankLines: a request followed by blank lines
// and the end of the client's input gets its answer. The blank lines look
// like a whole header to the pipelining check, so the answer waited in the
// write buffer, and reading them as the next request failed and closed the
// connection without flushing it (found by FuzzProxyRequest).
func TestE2EAnswerBeforeTrailingBlankLines(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	for _, tail := range []string{"\r\n\r\n", "\r\n\r\n\r\n", "\r\n\r\n\r\n\r\n"} {
		c := dialRaw(t, p.addr)
		_ = c.conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(c.conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"+tail); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.(*net.TCPConn).CloseWrite()
		resp, err := readRawResponse(c.br, "GET")
		if err != nil {
			t.Fatalf("tail %q: %v; want the answer", tail, err)
		}
		if resp.status() != 200 {
			t.Errorf("tail %q: status %d; want 200", tail, resp.status())
		}
	}
}

// TestE2EBusyConnectionTakesReloadedLimits: a client that sends its requests
// back to back keeps its connection's worker (the burst waits a moment for
// the next request rather than going idle); a reload that changes the
// limits still applies to it from the next request but one.
func TestE2EBusyConnectionTakesReloadedLimits(t *testing.T) {
	up := okUpstream(t)
	yaml := func(maxHeader string) string {
		return oneUpstreamConfig(up.addr(), "limits: {max_header_bytes: "+maxHeader+"}", "", "")
	}
	p := startProxy(t, yaml("16KiB"))
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("x", 8<<10) + "\r\n\r\n"
	small := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	c := dialRaw(t, p.addr)
	if got := c.roundTrip(big).status(); got != 200 {
		t.Fatalf("8 KiB header under a 16 KiB limit: got %d; want 200", got)
	}

	reloaded := make(chan struct{})
	go func() {
		defer close(reloaded)
		time.Sleep(50 * time.Millisecond) // while the client's requests run back to back
		cfg, err := config.Parse([]byte(yaml("4KiB")), "test.yaml")
		if err != nil {
			t.Error(err)
			return
		}
		if changed, err := p.srv.Reload(cfg); err != nil || !changed {
			t.Errorf("reload: got changed=%v err=%v; want a change", changed, err)
		}
	}()
	n := 0
	for done := false; !done; n++ {
		select {
		case <-reloaded:
			done = true
		default:
		}
		if got := c.roundTrip(small).status(); got != 200 {
			t.Fatalf("request %d: got %d; want 200", n, got)
		}
	}
	if got := c.roundTrip(big).status(); got != 431 {
		t.Errorf("8 KiB header after the reload to 4 KiB: got %d; want 431 (%d requests ran during the reload)", got, n)
	}
}

// TestE2EIdleConnectionsReleaseWorkers: a worker waits only briefly
// (lingerFor) for a connection's next request; connections that go quiet
// return to their idle goroutines, so they hold no worker and no buffer, and
// they still serve their next request.
func TestE2EIdleConnectionsReleaseWorkers(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	var clients []*rawClient
	for range 20 {
		c := dialRaw(t, p.addr)
		if got := c.roundTrip(get).status(); got != 200 {
			t.Fatalf("first request: got %d; want 200", got)
		}
		clients = append(clients, c)
	}
	active := p.srv.listeners["web"].wire.Active
	if !waitFor(2*time.Second, func() bool { return active() == 0 }) {
		t.Fatalf("%d of 20 quiet connections still hold a worker after 2s; want none after a few ms", active())
	}
	for i, c := range clients {
		if got := c.roundTrip(get).status(); got != 200 {
			t.Errorf("connection %d, after going idle: got %d; want 200", i, got)
		}
	}
}

// TestE2ESlowBodyAfterLinger: a request that follows another at once on a
// keep-alive connection (the worker was waiting for it, with a short read
// deadline) may still send its body slowly. read_timeout is zero by default:
// no bound on the body; the wait's deadline must not stay behind.
func TestE2ESlowBodyAfterLinger(t *testing.T) {
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "received %d", n)
	}))
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	for i := range 3 {
		if got := c.roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status(); got != 200 {
			t.Fatalf("GET %d: got %d; want 200", i, got)
		}
	}
	const chunk, chunks = 1000, 10
	if _, err := fmt.Fprintf(c.conn, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", chunk*chunks); err != nil {
		t.Fatal(err)
	}
	for range chunks { // 10 pieces 20 ms apart: far longer than the wait
		time.Sleep(20 * time.Millisecond)
		if _, err := c.conn.Write(bytes.Repeat([]byte("a"), chunk)); err != nil {
			t.Fatalf("write body: %v", err)
		}
	}
	resp, err := readRawResponse(c.br, "POST")
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	if want := fmt.Sprintf("received %d", chunk*chunks); resp.status() != 200 || string(resp.body) != want {
		t.Errorf("got %d %q; want 200 %q", resp.status(), resp.body, want)
	}
}

// TestE2EIdempotencyKeyResent: a target that closes each connection a moment
// after its answer without saying so (no Connection: close) loses the next
// pipelined POST, which the proxy writes to the pooled connection before the
// close. A POST with an idempotency key is then sent again on a fresh
// connection; one without is not, and gets 502 (as from nginx and net/http).
// The target never reads a second request on a connection, so whatever it
// received it received once.
func TestE2EIdempotencyKeyResent(t *testing.T) {
	const n = 20
	for _, key := range []string{"Idempotency-Key", "X-Idempotency-Key", ""} {
		name := key
		if name == "" {
			name = "no key"
		}
		t.Run(name, func(t *testing.T) {
			up := startRawUpstreamClosing(t, 5*time.Millisecond, func(req *rawMessage) (string, bool) {
				return okResponse("got " + string(req.body)), true
			})
			p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", "admin: {address: 127.0.0.1:0}"))
			c := dialRaw(t, p.addr)
			var all strings.Builder
			for i := range n {
				body := "b" + itoa(i)
				all.WriteString("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\n")
				if key != "" {
					all.WriteString(key + ": k" + itoa(i) + "\r\n")
				}
				all.WriteString("\r\n" + body)
			}
			if _, err := io.WriteString(c.conn, all.String()); err != nil {
				t.Fatal(err)
			}
			ok, lost := 0, 0
			for i := range n {
				resp, err := readRawResponse(c.br, "POST")
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				switch want := "got b" + itoa(i); {
				case resp.status() == 200 && string(resp.body) == want:
					ok++
				case key == "" && resp.status() == 502:
					lost++
				default:
					t.Errorf("response %d: got %d %q; want 200 %q", i, resp.status(), resp.body, want)
				}
			}
			if got := up.count(); got != ok {
				t.Errorf("requests at the target: got %d; want %d, one for each 200 (none sent twice)", got, ok)
			}
			// Each connection's second POST meets the close, unless the
			// proxy stalled for longer than the target's delay every time.
			if key == "" && lost == 0 {
				t.Errorf("no POST without a key lost the race (%d answered 200); want some 502s", ok)
			}
			resent := counted(t, p, "rampart_upstream_retries_total", "reason", "stale_connection")
			if key == "" && resent != 0 {
				t.Errorf("stale_connection retries counted: %v; want 0 without a key", resent)
			}
			if key != "" && resent == 0 {
				t.Errorf("stale_connection retries counted: 0; want one for each POST sent again")
			}
		})
	}
}

// counted sums the counter family name over p's series whose label has
// value (p's config needs an admin listener, which turns metrics on).
func counted(t *testing.T, p *testProxy, name, label, value string) float64 {
	t.Helper()
	if p.srv.registry == nil {
		t.Fatal("no metrics: the config has no admin listener")
	}
	mfs, err := p.srv.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
