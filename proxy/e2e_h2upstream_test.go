package proxy

// HTTP/2 upstreams (protocol: http2) reached by HTTP/1.1 clients: Go's
// net/http HTTP/2 server as the target, over h2c (prior knowledge) and over
// TLS (h2 by ALPN).

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/rampart-proxy/rampart/config"
)

// h2Handler answers what the HTTP/2 upstream tests check: the protocol and
// request fields it saw in X-Seen-* header fields, the body echoed (or its
// SHA-256 and length for /sum), and a large response streamed in pieces on
// /large?n=BYTES.
func h2Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Seen-Proto", r.Proto)
		h.Set("X-Seen-Host", r.Host)
		h.Set("X-Seen-Xff", r.Header.Get("X-Forwarded-For"))
		h.Set("X-Seen-Custom", r.Header.Get("X-Custom"))
		h.Set("X-Seen-Connection", r.Header.Get("Connection")+r.Header.Get("Keep-Alive"))
		h.Set("X-Seen-Length", strconv.FormatInt(r.ContentLength, 10))
		switch r.URL.Path {
		case "/sum":
			sum := sha256.New()
			n, err := io.Copy(sum, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
		case "/large":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
			f := w.(http.Flusher)
			for sent := 0; sent < n; sent += len(chunk) {
				_, _ = w.Write(chunk[:min(len(chunk), n-sent)])
				f.Flush()
			}
		default:
			_, _ = io.Copy(w, r.Body)
		}
	})
}

// startH2CUpstream starts an HTTP/2 server in cleartext (prior knowledge).
func startH2CUpstream(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	u := httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
	t.Cleanup(u.Close)
	return u
}

// startH2TLSUpstream starts an HTTP/2 server over TLS and returns it with
// the file of its certificate, for the upstream's tls.ca_file. With
// noH2 it offers HTTP/1.1 only.
func startH2TLSUpstream(t *testing.T, h http.Handler, noH2 bool) (*httptest.Server, string) {
	t.Helper()
	u := httptest.NewUnstartedServer(h)
	u.EnableHTTP2 = !noH2
	u.StartTLS()
	t.Cleanup(u.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: u.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return u, ca
}

// h2UpstreamConfig is a listener "web" and a catch-all route to upstream
// "app" with protocol http2 and one target.
func h2UpstreamConfig(targetURL, extraUpstream string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    protocol: http2
    targets:
      - url: %s
%s
routes:
  - name: all
    upstream: app
access_log:
  path: "off"
`, targetURL, indent(extraUpstream, 4))
}

// TestH2UpstreamFromHTTP1Client: an HTTP/1.1 client through Rampart to an
// HTTP/2 target, h2c and TLS: the request goes up as HTTP/2 with the proxy
// headers and without HTTP/1.1's connection fields; bodies both ways (whole,
// chunked and large) and a large streamed response arrive intact.
func TestH2UpstreamFromHTTP1Client(t *testing.T) {
	h2cUp := startH2CUpstream(t, h2Handler())
	tlsUp, ca := startH2TLSUpstream(t, h2Handler(), false)
	targets := []struct {
		name, url, extra string
	}{
		{"h2c", h2cUp.URL, ""},
		{"tls", tlsUp.URL, "tls:\n  ca_file: " + ca},
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			p := startProxy(t, h2UpstreamConfig(tg.url, tg.extra))
			base := "http://" + p.addr
			client := &http.Client{Timeout: e2eTimeout, Transport: &http.Transport{}}
			t.Cleanup(client.CloseIdleConnections)

			t.Run("header fields", func(t *testing.T) {
				req, _ := http.NewRequest(http.MethodGet, base+"/hello", nil)
				req.Host = "app.test"
				req.Header.Set("X-Custom", "kept")
				req.Header.Set("Connection", "keep-alive, X-Hop")
				req.Header.Set("Keep-Alive", "timeout=5")
				res, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				checks := []struct{ field, want string }{
					{"X-Seen-Proto", "HTTP/2.0"},
					{"X-Seen-Host", "app.test"},
					{"X-Seen-Xff", "127.0.0.1"},
					{"X-Seen-Custom", "kept"},
					{"X-Seen-Connection", ""},
				}
				if res.StatusCode != http.StatusOK {
					t.Errorf("status: got %d; want 200", res.StatusCode)
				}
				for _, c := range checks {
					if got := res.Header.Get(c.field); got != c.want {
						t.Errorf("%s: got %q; want %q", c.field, got, c.want)
					}
				}
				if res.Header.Get("X-Request-Id") == "" {
					t.Error("no X-Request-Id in the answer; want one")
				}
			})

			bodies := []struct {
				name    string
				size    int
				chunked bool
			}{
				{"small whole body", 100, false},
				{"small chunked body", 100, true},
				{"large whole body", 3 << 20, false},
				{"large chunked body", 3 << 20, true},
			}
			for _, b := range bodies {
				t.Run(b.name, func(t *testing.T) {
					data := bytes.Repeat([]byte("rampart!"), b.size/8)
					var body io.Reader = bytes.NewReader(data)
					if b.chunked {
						body = io.MultiReader(body) // hides the length: chunked
					}
					req, _ := http.NewRequest(http.MethodPost, base+"/sum", body)
					res, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := io.ReadAll(res.Body)
					res.Body.Close()
					sum := sha256.Sum256(data)
					want := fmt.Sprintf("%d %s", len(data), hex.EncodeToString(sum[:]))
					if res.StatusCode != http.StatusOK || string(got) != want {
						t.Errorf("got %d %q; want 200 %q", res.StatusCode, got, want)
					}
					wantLen := strconv.Itoa(len(data))
					if b.chunked {
						wantLen = "-1"
					}
					if got := res.Header.Get("X-Seen-Length"); got != wantLen {
						t.Errorf("content-length the target saw: got %s; want %s", got, wantLen)
					}
				})
			}

			t.Run("echo", func(t *testing.T) {
				res, err := client.Post(base+"/echo", "text/plain", strings.NewReader("hello, h2"))
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if string(got) != "hello, h2" {
					t.Errorf("body: got %q; want %q", got, "hello, h2")
				}
			})

			t.Run("large streamed response", func(t *testing.T) {
				const n = 16 << 20
				res, err := client.Get(base + "/large?n=" + strconv.Itoa(n))
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
				want := sha256.New()
				for sent := 0; sent < n; sent += len(chunk) {
					want.Write(chunk[:min(len(chunk), n-sent)])
				}
				got := sha256.New()
				m, err := io.Copy(got, res.Body)
				if err != nil || m != n || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
					t.Errorf("got %d bytes (err %v), same content %v; want %d bytes, the same content",
						m, err, bytes.Equal(got.Sum(nil), want.Sum(nil)), n)
				}
			})
		})
	}
}

// TestH2UpstreamFailures: what an HTTP/1.1 client gets when the HTTP/2
// target cannot serve: nothing listening (502), a TLS target that does not
// offer h2 (502, never a silent HTTP/1.1), a WebSocket upgrade (501).
func TestH2UpstreamFailures(t *testing.T) {
	h1Only, ca := startH2TLSUpstream(t, h2Handler(), true)
	h2cUp := startH2CUpstream(t, h2Handler())
	tests := []struct {
		name       string
		url, extra string
		headers    []string
		wantStatus int
	}{
		{"nothing listens", "http://" + freeAddr(t), "", nil, http.StatusBadGateway},
		{"TLS target without h2", h1Only.URL, "tls:\n  ca_file: " + ca, nil, http.StatusBadGateway},
		{"WebSocket upgrade", h2cUp.URL, "", []string{"Connection: Upgrade", "Upgrade: websocket",
			"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, http.StatusNotImplemented},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startProxy(t, h2UpstreamConfig(tt.url, tt.extra))
			m := rawGet(t, p.addr, "app.test", "/", tt.headers...)
			if got := m.status(); got != tt.wantStatus {
				t.Errorf("status: got %d; want %d", got, tt.wantStatus)
			}
		})
	}
}

// TestH2UpstreamEarlyAnswerToStreamingHTTP1Client: an HTTP/2 target that
// answers (and ends its answer with trailers) after reading only the first
// chunk of an HTTP/1.1 client's chunked body, while the client is still
// sending. The client gets the answer, the HTTP/1.1 wire reads the rest of
// the body, and the connection serves the next request. The upstream
// client's reads of the body and the wire's must not overlap (heldBody;
// run with -race).
func TestH2UpstreamEarlyAnswerToStreamingHTTP1Client(t *testing.T) {
	up := startH2CUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/early" {
			// Reads the first chunk only: the proxy's next read of the
			// client's body is then waiting when the answer ends.
			_, _ = io.ReadFull(r.Body, make([]byte, 16))
			w.Header().Set("Trailer", "X-Done")
			_, _ = io.WriteString(w, "done after half")
			w.Header().Set("X-Done", "yes") // ends the stream with a HEADERS frame, as gRPC does
			return
		}
		_, _ = io.Copy(w, r.Body)
	}))
	p := startProxy(t, h2UpstreamConfig(up.URL, ""))
	c := dialRaw(t, p.addr)
	if _, err := io.WriteString(c.conn, "POST /early HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the target answers meanwhile
	if _, err := io.WriteString(c.conn, "10\r\n0123456789abcdef\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	m, err := readRawResponse(c.br, "POST")
	if err != nil {
		t.Fatal(err)
	}
	if m.status() != http.StatusOK || string(m.body) != "done after half" {
		t.Errorf("early answer: got %d %q; want 200 \"done after half\"", m.status(), m.body)
	}
	next := c.roundTrip("POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello")
	if next.status() != http.StatusOK || string(next.body) != "hello" {
		t.Errorf("next request on the connection: got %d %q; want 200 \"hello\"", next.status(), next.body)
	}
}

// TestH2UpstreamReloadClosesIdleConnections: a reload that drops an HTTP/2
// target closes Rampart's idle connection to it at once (HTTP/2 keeps few
// long-lived connections, which would otherwise stay until idle timeout).
func TestH2UpstreamReloadClosesIdleConnections(t *testing.T) {
	closed := make(chan struct{}, 4)
	old := httptest.NewUnstartedServer(h2c.NewHandler(h2Handler(), &http2.Server{}))
	// h2c hijacks its connections from net/http (no ConnState after that):
	// the listener's connections report their own Close.
	old.Listener = &closeNotifyListener{Listener: old.Listener, closed: closed}
	old.Start()
	t.Cleanup(old.Close)
	next := startH2CUpstream(t, h2Handler())
	p := startProxy(t, h2UpstreamConfig(old.URL, ""))
	if m := rawGet(t, p.addr, "app.test", "/first"); m.status() != http.StatusOK {
		t.Fatalf("first request: got %d; want 200", m.status())
	}
	cfg, err := config.Parse([]byte(h2UpstreamConfig(next.URL, "")), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := p.srv.Reload(cfg); err != nil || !changed {
		t.Fatalf("Reload: changed %v, %v; want true, nil", changed, err)
	}
	select {
	case <-closed:
	case <-time.After(e2eTimeout):
		t.Fatal("the dropped target's connection is still open; want it closed at the reload")
	}
	if m := rawGet(t, p.addr, "app.test", "/second"); m.status() != http.StatusOK {
		t.Errorf("request after the reload: got %d; want 200", m.status())
	}
}

// closeNotifyListener's connections send on closed when they are closed
// (the server closes its side when the peer's closing reaches it).
type closeNotifyListener struct {
	net.Listener
	closed chan struct{}
}

func (l *closeNotifyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &closeNotifyConn{Conn: c, closed: l.closed}, nil
}

type closeNotifyConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (c *closeNotifyConn) Close() error {
	c.once.Do(func() {
		select {
		case c.closed <- struct{}{}:
		default:
		}
	})
	return c.Conn.Close()
}
