package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/wire"
)

const testTimeout = 5 * time.Second

// handOffRecord is what a HandOff saw.
type handOffRecord struct {
	proto    string
	buffered string
	open     int64 // the server's open connections during the call
}

// startServer serves a loopback listener with s (Handler, TLS, HandOff set
// by the caller) until the test ends.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorkers()
	s.Workers = w
	s.Name = "test"
	s.Log = slog.New(slog.DiscardHandler)
	s.SetLimits(config.Limits{ReadHeaderTimeout: config.Duration(testTimeout), IdleTimeout: config.Duration(testTimeout), MaxHeaderBytes: 8 << 10})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		w.Close()
	})
	return ln.Addr().String()
}

// okHandler answers 200 "ok" and counts its calls; it checks the stream.
func okHandler(t *testing.T, calls *atomic.Int64, wantTLS bool) wire.Handler {
	return wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, st wire.Stream) {
		calls.Add(1)
		if st.Protocol() != wire.HTTP1 || st.TLS() != wantTLS || st.Peer() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("stream: protocol %v, TLS %v, peer %v; want HTTP/1.1, %v, 127.0.0.1", st.Protocol(), st.TLS(), st.Peer(), wantTLS)
		}
		ctx.SetBodyString("ok")
	})
}

// recordHandOff returns a HandOff that records its call in rec, writes
// "handed" to the connection and returns.
func recordHandOff(s *Server, rec chan<- handOffRecord) HandOff {
	return func(c net.Conn, proto string, buffered []byte, peer netip.Addr) {
		rec <- handOffRecord{proto: proto, buffered: string(buffered), open: s.Open()}
		_, _ = c.Write([]byte("handed"))
	}
}

// TestHandOffPreface: a plain connection that begins with the HTTP/2
// preface goes to HandOff, with the bytes read so far, when preface
// detection is on; it stays counted while HandOff has it. With detection
// off, the preface is an HTTP/1.1 request of version HTTP/2.0: 505.
func TestHandOffPreface(t *testing.T) {
	tests := []struct {
		name      string
		detect    bool
		send      string
		wantProto string // "": not handed off
		wantReply string // the start of what the client reads
	}{
		{"preface, detection on", true, Preface + "\x00\x00\x00\x04", "h2c", "handed"},
		{"HTTP/1.1, detection on", true, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", "HTTP/1.1 200"},
		{"preface, detection off", false, Preface, "", "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			rec := make(chan handOffRecord, 1)
			s := &Server{Handler: okHandler(t, &calls, false)}
			s.HandOff = recordHandOff(s, rec)
			s.SetDetectPreface(tt.detect)
			addr := startServer(t, s)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			reply := make([]byte, len(tt.wantReply))
			if _, err := io.ReadFull(c, reply); err != nil || string(reply) != tt.wantReply {
				t.Fatalf("reply: got %q (%v); want %q", reply, err, tt.wantReply)
			}
			if tt.wantProto == "" {
				if len(rec) != 0 {
					t.Errorf("HandOff called with %+v; want no call", <-rec)
				}
				return
			}
			r := <-rec
			if r.proto != tt.wantProto || !strings.HasPrefix(r.buffered, Preface) || r.open != 1 {
				t.Errorf("HandOff got proto %q, buffered %q, %d open; want %q, the preface first, 1 open", r.proto, r.buffered, r.open, tt.wantProto)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("handler called %d times; want 0", n)
			}
		})
	}
}

// TestHandOffALPN: a TLS connection that negotiates h2 goes to HandOff
// after the handshake; one that negotiates http/1.1, or nothing, is served
// as HTTP/1.1.
func TestHandOffALPN(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Issue(t, "localhost", time.Now().Add(time.Hour), false, "localhost")
	serverConf := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCert(t)}, NextProtos: []string{"h2", "http/1.1"}}
	tests := []struct {
		name      string
		offer     []string
		wantProto string // "": served as HTTP/1.1
	}{
		{"h2", []string{"h2", "http/1.1"}, "h2"},
		{"http/1.1", []string{"http/1.1"}, ""},
		{"no ALPN", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int64
			rec := make(chan handOffRecord, 1)
			s := &Server{Handler: okHandler(t, &calls, true), TLS: func() *tls.Config { return serverConf }}
			s.HandOff = recordHandOff(s, rec)
			addr := startServer(t, s)
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: testcert.Pool(ca.PEM), NextProtos: tt.offer})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if tt.wantProto != "" {
				reply := make([]byte, len("handed"))
				if _, err := io.ReadFull(c, reply); err != nil || string(reply) != "handed" {
					t.Fatalf("reply: got %q (%v); want %q", reply, err, "handed")
				}
				if r := <-rec; r.proto != tt.wantProto || r.buffered != "" || r.open != 1 {
					t.Errorf("HandOff got proto %q, buffered %q, %d open; want %q, nothing, 1 open", r.proto, r.buffered, r.open, tt.wantProto)
				}
				return
			}
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			if err := resp.Read(bufio.NewReader(c)); err != nil || string(resp.Body()) != "ok" {
				t.Fatalf("response: %v, body %q; want 200 ok", err, resp.Body())
			}
			if len(rec) != 0 || calls.Load() != 1 {
				t.Errorf("HandOff calls %d, handler calls %d; want 0 and 1", len(rec), calls.Load())
			}
		})
	}
}

// TestHandOffCounted: a handed-off connection counts against
// max_connections until HandOff returns: another client is refused while
// it runs, and served once it has returned.
func TestHandOffCounted(t *testing.T) {
	var calls atomic.Int64
	entered, release := make(chan struct{}), make(chan struct{})
	s := &Server{Handler: okHandler(t, &calls, false)}
	s.HandOff = func(c net.Conn, proto string, buffered []byte, peer netip.Addr) {
		close(entered)
		<-release
	}
	s.SetDetectPreface(true)
	addr := startServer(t, s)
	s.SetLimits(config.Limits{ReadHeaderTimeout: config.Duration(testTimeout), IdleTimeout: config.Duration(testTimeout),
		MaxHeaderBytes: 8 << 10, MaxConnections: 1})
	h2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if _, err := io.WriteString(h2, Preface); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("HandOff not called")
	}
	get := func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		return resp.Read(bufio.NewReader(c))
	}
	if err := get(); err == nil {
		t.Error("a second connection while the first is handed off: served; want refused (max_connections 1)")
	}
	close(release)
	if !waitUntil(testTimeout, func() bool { return s.Open() == 0 }) {
		t.Fatalf("%d connections open after HandOff returned; want 0", s.Open())
	}
	if err := get(); err != nil {
		t.Errorf("a connection after HandOff returned: %v; want served", err)
	}
}

// waitUntil polls cond every 10 ms until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
