package proxy

// Stalled clients over real sockets: a client that stops reading a large
// response, or stops sending its upload, is cut by send_timeout or
// body_timeout, and the upstream connection its exchange held is closed, so
// that with max_conns_per_target: 1 the next client is served rather than
// answered 503. Clients that are slow but keep going are never cut: the
// timeouts are about progress, not about the total time.

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// stallLargeBody is the large response: far more than the socket buffers
// between the upstream and the client hold.
const stallLargeBody = 16 << 20

// stallUpstream serves GET /large (stallLargeBody bytes; chunked with
// ?chunked), POST /upload (reads the whole body) and "ok" otherwise. Each
// /large and /upload says when it begins and how it ends.
type stallUpstream struct {
	*httpUpstream
	started chan string // the path, when a /large or /upload begins
	ended   chan error  // nil when it ended whole, else the error
}

func startStallUpstream(t *testing.T) *stallUpstream {
	t.Helper()
	u := &stallUpstream{started: make(chan string, 64), ended: make(chan error, 64)}
	u.httpUpstream = startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		switch r.URL.Path {
		case "/large":
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(stallLargeBody))
			}
			u.started <- r.URL.Path
			chunk := make([]byte, 64<<10)
			var err error
			for sent := 0; sent < stallLargeBody && err == nil; sent += len(chunk) {
				_ = rc.SetWriteDeadline(time.Now().Add(e2eTimeout))
				_, err = w.Write(chunk)
			}
			if err == nil {
				err = rc.Flush()
			}
			u.ended <- err
		case "/upload":
			u.started <- r.URL.Path
			_ = rc.SetReadDeadline(time.Now().Add(e2eTimeout))
			n, err := io.Copy(io.Discard, r.Body)
			u.ended <- err
			fmt.Fprintf(w, "received %d", n)
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	return u
}

// waitStarted waits for the upstream to begin serving path.
func (u *stallUpstream) waitStarted(t *testing.T, path string) {
	t.Helper()
	select {
	case got := <-u.started:
		if got != path {
			t.Fatalf("upstream began %s; want %s", got, path)
		}
	case <-time.After(e2eTimeout):
		t.Fatalf("upstream never began %s", path)
	}
}

// waitCut waits for the exchange the upstream began to end, and fails t
// unless it ended cut short (its connection closed by the proxy) within d.
func (u *stallUpstream) waitCut(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-u.ended:
		if err == nil {
			t.Errorf("%s: the upstream's exchange ended whole; want it cut short", what)
		}
	case <-time.After(d):
		t.Errorf("%s: the upstream still serves the stalled exchange after %v; want its connection closed", what, d)
	}
}

// stallSide is how a test reaches the listener "web": plain or TLS.
type stallSide struct {
	tls  bool
	conf *tls.Config
}

// stallConfig is a proxy whose "web" listener has the given limits (and a
// certificate when side is TLS), in front of u with max_conns_per_target: 1.
func stallConfig(t *testing.T, u *stallUpstream, withTLS bool, limits string) (string, stallSide) {
	t.Helper()
	listener := "limits:\n" + indent(limits, 2)
	side := stallSide{tls: withTLS}
	if withTLS {
		dir := t.TempDir()
		ca := testcert.NewCA(t, "Stall CA")
		cf, kf := ca.Issue(t, "web", time.Time{}, false, "web.test").Write(t, dir, "web")
		listener += "\n" + staticTLSYAML("", [2]string{cf, kf})
		side.conf = &tls.Config{ServerName: "web.test", RootCAs: testcert.Pool(ca.PEM)}
	}
	return oneUpstreamConfig(u.addr(), listener, "max_conns_per_target: 1", "admin:\n  address: 127.0.0.1:0\n"), side
}

// dial connects to addr; with rcvbuf > 0 the client's receive buffer is
// that small, so that a client that does not read stalls the proxy at once.
// raw is the socket, c what the client reads and writes (TLS over raw).
func (s stallSide) dial(t *testing.T, addr string, rcvbuf int) (raw net.Conn, c net.Conn) {
	t.Helper()
	if rcvbuf > 0 {
		raw = dialSmallWindow(t, addr)
	} else {
		raw = dialRaw(t, addr).conn
	}
	_ = raw.SetDeadline(time.Now().Add(3 * e2eTimeout))
	if !s.tls {
		return raw, raw
	}
	tc := tls.Client(raw, s.conf)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	return raw, tc
}

// get sends one GET on a fresh connection and returns the status.
func (s stallSide) get(t *testing.T, addr, path string) (int, error) {
	t.Helper()
	if !s.tls {
		return quickGet(addr, path)
	}
	resp, _, err := tlsGet(addr, s.conf, "web.test", path)
	if err != nil {
		return 0, err
	}
	return resp.status(), nil
}

// TestE2EStalledReaderFreesUpstream: a client that stops reading a 16 MiB
// response holds the only upstream connection (max_conns_per_target: 1);
// send_timeout cuts it, the upstream connection is closed (the response was
// half read), and the next client is served. Without send_timeout the next
// client waits for a connection and gets 503.
func TestE2EStalledReaderFreesUpstream(t *testing.T) {
	tests := []struct {
		name    string
		tls     bool
		request string
	}{
		{"content-length", false, "GET /large HTTP/1.1\r\nHost: web.test\r\n\r\n"},
		{"chunked", false, "GET /large?chunked=1 HTTP/1.1\r\nHost: web.test\r\n\r\n"},
		{"HTTP/1.0, body ended by close", false, "GET /large?chunked=1 HTTP/1.0\r\nHost: web.test\r\n\r\n"},
		{"TLS", true, "GET /large HTTP/1.1\r\nHost: web.test\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startStallUpstream(t)
			cfg, side := stallConfig(t, up, tt.tls, "send_timeout: 300ms")
			p := startProxy(t, cfg)

			raw, c := side.dial(t, p.addr, 4096)
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			up.waitStarted(t, "/large") // the only upstream connection is taken
			// The client reads nothing more. The next client waits for the
			// upstream connection, which the cut frees.
			st, err := side.get(t, p.addr, "/")
			if err != nil || st != 200 {
				t.Errorf("another client while one stalls: got %d, %v; want 200", st, err)
			}
			if !waitFor(5*time.Second, func() bool { return connClosedByProxy(raw) }) {
				t.Errorf("stalled reader: connection still open; want it closed by send_timeout")
			}
			up.waitCut(t, 5*time.Second, "stalled reader")
			wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "send_stall"}, 1,
				"responses cut by send_timeout")
		})
	}
}

// TestE2EStalledUploadFreesUpstream: a client that stops in the middle of
// its request body is answered 408 after body_timeout. A streamed upload
// held the only upstream connection: it is closed (the request was half
// sent) and the next client is served. A small body, read whole before
// anything goes upstream, is cut the same way.
func TestE2EStalledUploadFreesUpstream(t *testing.T) {
	tests := []struct {
		name     string
		tls      bool
		request  string // everything the client sends before it stalls
		upstream bool   // the upload had reached the upstream
	}{
		{"content-length, streamed", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("u", 200<<10), true},
		{"chunked, streamed", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(200<<10, 16) + "\r\n" + strings.Repeat("u", 200<<10) + "\r\n", true},
		{"chunked, stalled within a chunk", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(200<<10, 16) + "\r\n" + strings.Repeat("u", 150<<10), true},
		{"content-length, small body read whole", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 10000\r\n\r\n" + strings.Repeat("u", 1000), false},
		{"chunked, small body read whole", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n" + strings.Repeat("u", 1024) + "\r\n", false},
		{"expect 100-continue", false,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n", false},
		{"TLS, streamed", true,
			"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("u", 200<<10), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startStallUpstream(t)
			cfg, side := stallConfig(t, up, tt.tls, "body_timeout: 300ms")
			p := startProxy(t, cfg)

			_, c := side.dial(t, p.addr, 0)
			answer := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(c) // until the proxy closes
				answer <- string(b)
			}()
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			if tt.upstream {
				up.waitStarted(t, "/upload") // the only upstream connection is taken
				st, err := side.get(t, p.addr, "/")
				if err != nil || st != 200 {
					t.Errorf("another client while one stalls: got %d, %v; want 200", st, err)
				}
				up.waitCut(t, 5*time.Second, "stalled upload")
			}
			select {
			case got := <-answer:
				got = strings.TrimPrefix(got, "HTTP/1.1 100 Continue\r\n\r\n")
				if !strings.HasPrefix(got, "HTTP/1.1 408 ") {
					t.Errorf("stalled upload: got %q; want 408 Request Timeout and the connection closed", firstLine(got))
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("stalled upload: no answer and the connection still open after 5s; want 408 after body_timeout")
			}
			wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "body_stall"}, 1,
				"request bodies cut by body_timeout")
			if st, err := side.get(t, p.addr, "/"); err != nil || st != 200 {
				t.Errorf("a client after the stalled one: got %d, %v; want 200", st, err)
			}
		})
	}
}

// TestE2ESlowReaderNotCut: a client that reads a little every 100 ms, more
// than six times the 300 ms send_timeout in all, is never cut: the timeout
// bounds a stall, not the response. Its proxy is blocked on a full socket
// most of the time.
func TestE2ESlowReaderNotCut(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run("tls="+strconv.FormatBool(withTLS), func(t *testing.T) {
			up := startStallUpstream(t)
			cfg, side := stallConfig(t, up, withTLS, "send_timeout: 300ms")
			p := startProxy(t, cfg)
			_, c := side.dial(t, p.addr, 4096)
			if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: web.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReaderSize(c, 1024)
			resp, err := readRawHeader(br)
			if err != nil || resp.status() != 200 {
				t.Fatalf("slow reader: got %v, %v; want a 200 header", resp, err)
			}
			buf := make([]byte, 16<<10)
			total := 0
			for i := 0; i < 20; i++ { // 2 s
				time.Sleep(100 * time.Millisecond)
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := io.ReadFull(br, buf)
				total += n
				if err != nil {
					t.Fatalf("slow reader, read %d after %d bytes: %v; want the response to keep coming", i, total, err)
				}
			}
			if total >= stallLargeBody {
				t.Fatalf("read %d bytes: the response must be larger than what the test reads", total)
			}
			if n, _ := metricSum(scrapeMetrics(t, p), "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "send_stall"}); n != 0 {
				t.Errorf("send_stall timeouts: got %v; want 0 (the client kept reading)", n)
			}
		})
	}
}

// TestE2ESlowUploadNotCut: a body sent a piece every 100 ms, more than six
// times the 300 ms body_timeout in all, arrives whole, streamed or read
// whole, with either framing.
func TestE2ESlowUploadNotCut(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
		piece   int
	}{
		{"content-length, streamed", false, 8 << 10},
		{"content-length, small", false, 100},
		{"chunked, streamed", true, 8 << 10},
		{"chunked, small", true, 100},
	}
	const pieces = 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startStallUpstream(t)
			cfg, side := stallConfig(t, up, false, "body_timeout: 300ms")
			p := startProxy(t, cfg)
			_, c := side.dial(t, p.addr, 0)
			head := "POST /upload HTTP/1.1\r\nHost: web.test\r\n"
			if tt.chunked {
				head += "Transfer-Encoding: chunked\r\n\r\n"
			} else {
				head += "Content-Length: " + strconv.Itoa(pieces*tt.piece) + "\r\n\r\n"
			}
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatal(err)
			}
			piece := strings.Repeat("s", tt.piece)
			if tt.chunked {
				piece = strconv.FormatInt(int64(tt.piece), 16) + "\r\n" + piece + "\r\n"
			}
			for i := 0; i < pieces; i++ {
				time.Sleep(100 * time.Millisecond)
				if _, err := io.WriteString(c, piece); err != nil {
					t.Fatalf("piece %d: %v; want the upload to go on", i, err)
				}
			}
			if tt.chunked {
				_, _ = io.WriteString(c, "0\r\n\r\n")
			}
			resp, err := readRawResponse(bufio.NewReader(c), "POST")
			if err != nil {
				t.Fatalf("slow upload: %v", err)
			}
			if want := fmt.Sprintf("received %d", pieces*tt.piece); resp.status() != 200 || string(resp.body) != want {
				t.Errorf("slow upload: got %d %q; want 200 %q", resp.status(), resp.body, want)
			}
		})
	}
}

// startTunnelUpstream answers every WebSocket handshake with 101; then, for
// /push, it sends 64 KiB pieces until a write fails, and otherwise echoes
// what it receives. ended gets how a /push ended.
func startTunnelUpstream(t *testing.T) (addr string, ended <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 16)
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(3 * e2eTimeout))
				br := bufio.NewReader(c)
				req, err := readRawHeader(br)
				if err != nil {
					return
				}
				key, _ := req.get("Sec-WebSocket-Key")
				_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
					"Sec-WebSocket-Accept: "+wsAccept(key)+"\r\n\r\n")
				if !strings.HasPrefix(req.first, "GET /push ") {
					_, _ = io.Copy(c, br)
					return
				}
				piece := make([]byte, 64<<10)
				for i := 0; i < 4096; i++ { // at most 256 MiB
					_ = c.SetWriteDeadline(time.Now().Add(e2eTimeout))
					if _, err := c.Write(piece); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		for {
			select {
			case c := <-conns:
				_ = c.Close()
			default:
				return
			}
		}
	})
	return ln.Addr().String(), done
}

// upgrade sends a WebSocket handshake for path on c and reads the 101.
func upgrade(t *testing.T, c net.Conn, br *bufio.Reader, path string) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: web.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: "+wsKey()+"\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := readRawHeader(br)
	if err != nil || resp.status() != 101 {
		t.Fatalf("handshake: got %v, %v; want 101", resp, err)
	}
}

// TestE2ETunnelTimeouts: a WebSocket client that stops reading what the
// upstream pushes is cut by send_timeout, and the tunnel's upstream
// connection is closed; a tunnel that carries nothing for longer than every
// timeout of the listener stays open (tunnels have no idle timeout).
func TestE2ETunnelTimeouts(t *testing.T) {
	const limits = "send_timeout: 300ms\nbody_timeout: 300ms\nidle_timeout: 300ms\nread_header_timeout: 300ms"
	t.Run("client stops reading", func(t *testing.T) {
		addr, ended := startTunnelUpstream(t)
		p := startProxy(t, oneUpstreamConfig(addr, "limits:\n"+indent(limits, 2), "", "admin:\n  address: 127.0.0.1:0\n"))
		c := dialSmallWindow(t, p.addr)
		_ = c.SetDeadline(time.Now().Add(e2eTimeout))
		upgrade(t, c, bufio.NewReaderSize(c, 64), "/push")
		// The client reads nothing more (until the checks below).
		select {
		case err := <-ended:
			if err == nil {
				t.Errorf("upstream: pushed everything; want its connection closed")
			}
		case <-time.After(5 * time.Second):
			t.Errorf("upstream: still pushing after 5s; want its connection closed")
		}
		wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "send_stall"}, 1,
			"tunnels cut by send_timeout")
		if !waitFor(5*time.Second, func() bool { return connClosedByProxy(c) }) {
			t.Errorf("tunnel whose client stopped reading: still open; want it cut by send_timeout")
		}
	})
	t.Run("idle tunnel stays open", func(t *testing.T) {
		addr, _ := startTunnelUpstream(t)
		p := startProxy(t, oneUpstreamConfig(addr, "limits:\n"+indent(limits, 2), "", ""))
		rc := dialRaw(t, p.addr)
		upgrade(t, rc.conn, rc.br, "/echo")
		time.Sleep(1500 * time.Millisecond) // five times every timeout of the listener
		if _, err := io.WriteString(rc.conn, "still here"); err != nil {
			t.Fatalf("write after the quiet time: %v", err)
		}
		got := make([]byte, len("still here"))
		if _, err := io.ReadFull(rc.br, got); err != nil || string(got) != "still here" {
			t.Errorf("echo after the quiet time: got %q, %v; want %q", got, err, "still here")
		}
	})
}

// TestE2ETLSStalledReaderRightAfterHandshake: the response of a TLS
// client's first request follows the proxy's last handshake write within
// a moment; the write deadline that handshake write left must not be
// taken for one still set: a client that then stops reading is cut all
// the same. (send_timeout is long enough here that the deadline's
// tolerance, a 160th of it, spans that moment.)
func TestE2ETLSStalledReaderRightAfterHandshake(t *testing.T) {
	up := startStallUpstream(t)
	cfg, side := stallConfig(t, up, true, "send_timeout: 4s")
	cfg = strings.Replace(cfg, "max_conns_per_target: 1", "max_conns_per_target: 1\n    timeouts: {connect: 9s}", 1)
	p := startProxy(t, cfg)
	raw, c := side.dial(t, p.addr, 4096)
	if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: web.test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	up.waitStarted(t, "/large")
	if st, err := side.get(t, p.addr, "/"); err != nil || st != 200 {
		t.Errorf("another client while one stalls: got %d, %v; want 200", st, err)
	}
	up.waitCut(t, 5*time.Second, "stalled reader")
	wantMetricAtLeast(t, p, "rampart_request_timeouts_total", map[string]string{"listener": "web", "kind": "send_stall"}, 1,
		"responses cut by send_timeout")
	if !waitFor(5*time.Second, func() bool { return connClosedByProxy(raw) }) {
		t.Errorf("stalled reader: connection still open; want it closed by send_timeout")
	}
}
