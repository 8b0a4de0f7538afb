package proxy

// End-to-end tests of HTTP/2 connections across a shutdown and reloads:
// GOAWAY with the streams in flight served to their end, and reloads that
// change protocols or the http2 block applying to new connections only.

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
)

// dialH2 opens one HTTP/2 connection of c's kind to addr and returns it as
// x/net's ClientConn (whose State shows a GOAWAY received); it is closed
// when the test ends.
func dialH2(t *testing.T, c *h2Client, addr string) *http2.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	var conn net.Conn
	var err error
	if c.scheme == "https" {
		conn, err = c.tr.DialTLSContext(ctx, "tcp", addr, &tls.Config{NextProtos: []string{"h2"}})
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	cc, err := c.tr.NewClientConn(conn)
	if err != nil {
		t.Fatalf("HTTP/2 connection to %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ccGet sends a GET of path on cc and reads the answer.
func ccGet(cc *http2.ClientConn, scheme, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://example.com"+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// slowUpstream answers /slow once release is closed (telling started when
// the request arrives), anything else at once.
type slowUpstream struct {
	*httpUpstream
	started chan struct{}
	release chan struct{}
}

func startSlowUpstream(t *testing.T) *slowUpstream {
	u := &slowUpstream{started: make(chan struct{}, 4), release: make(chan struct{})}
	u.httpUpstream = startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			_, _ = io.WriteString(w, "fast")
			return
		}
		u.started <- struct{}{}
		select {
		case <-u.release:
		case <-time.After(e2eTimeout):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow and done")
	}))
	return u
}

// goAwayDrill starts a slow stream on an HTTP/2 connection to addr, has
// stop begin (a shutdown, a reload that removes the listener), and checks
// the graceful way: the client gets a GOAWAY, a new stream on the
// connection is not served, the slow stream ends well, and stop's wait
// (done) ends only after it.
func goAwayDrill(t *testing.T, c *h2Client, addr string, up *slowUpstream, stop func() error, done func(*http2.ClientConn) bool) {
	t.Helper()
	cc := dialH2(t, c, addr)
	if status, _, err := ccGet(cc, c.scheme, "/fast"); err != nil || status != 200 {
		t.Fatalf("warm-up: got %d, %v; want 200", status, err)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		s, b, err := ccGet(cc, c.scheme, "/slow")
		slow <- result{s, b, err}
	}()
	select {
	case <-up.started:
	case <-time.After(e2eTimeout):
		t.Fatal("the slow request never reached the upstream")
	}
	stopErr := make(chan error, 1)
	go func() { stopErr <- stop() }()
	if !waitFor(e2eTimeout, func() bool { return cc.State().Closing }) {
		t.Fatal("no GOAWAY reached the client")
	}
	if status, body, err := ccGet(cc, c.scheme, "/fast"); err == nil {
		t.Errorf("a new stream after GOAWAY: got %d %q; want it not served", status, body)
	}
	if done(cc) {
		t.Error("the stop ended while a stream was in flight")
	}
	close(up.release)
	select {
	case r := <-slow:
		if r.err != nil || r.status != 200 || r.body != "slow and done" {
			t.Errorf("in-flight stream: got %d %q, %v; want 200 %q", r.status, r.body, r.err, "slow and done")
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the in-flight stream never completed")
	}
	select {
	case err := <-stopErr:
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the stop did not return")
	}
	if !waitFor(e2eTimeout, func() bool { return done(cc) }) {
		t.Error("the stop never ended")
	}
	if !waitFor(e2eTimeout, func() bool { return cc.State().Closed }) {
		t.Error("the connection was not closed after its last stream")
	}
}

// TestE2EHTTP2GracefulShutdown: Server.Shutdown sends GOAWAY on HTTP/2
// connections (TLS and h2c), serves their streams in flight to the end,
// and returns after them.
func TestE2EHTTP2GracefulShutdown(t *testing.T) {
	for _, kind := range []string{"h2", "h2c"} {
		t.Run(kind, func(t *testing.T) {
			up := startSlowUpstream(t)
			e := startH2Proxy(t, "", "", oneRoute(up.addr()))
			c := e.clients(t)[map[string]int{"h2": 0, "h2c": 1}[kind]]
			var returned atomic.Bool
			stop := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
				defer cancel()
				err := e.p.shutdown(ctx)
				returned.Store(true)
				return err
			}
			goAwayDrill(t, c, c.addr, up, stop, func(*http2.ClientConn) bool { return returned.Load() })
			if conn, err := net.DialTimeout("tcp", c.addr, time.Second); err == nil {
				conn.Close()
				t.Error("the listener still accepts after Shutdown")
			}
		})
	}
}

// TestE2EHTTP2ReloadRemovesListener: a reload that removes a listener
// sends GOAWAY on its HTTP/2 connections and lets their streams finish;
// the listener then accepts nothing.
func TestE2EHTTP2ReloadRemovesListener(t *testing.T) {
	for _, kind := range []string{"h2", "h2c"} {
		t.Run(kind, func(t *testing.T) {
			up := startSlowUpstream(t)
			e := startH2Proxy(t, "", "", oneRoute(up.addr()))
			c := e.clients(t)[map[string]int{"h2": 0, "h2c": 1}[kind]]
			cfg := e.p.srv.RunningConfig()
			next := *cfg
			next.Listeners = map[string]*config.Listener{}
			for name, l := range cfg.Listeners {
				next.Listeners[name] = l
			}
			removed := map[string]string{"h2": "web", "h2c": "plain"}[kind]
			delete(next.Listeners, removed)
			stop := func() error {
				_, err := e.p.srv.Reload(&next)
				return err
			}
			// The drain goes on after Reload returns: it is done when
			// the listener's port refuses connections and the server
			// has closed its HTTP/2 connection.
			closed := func() bool {
				conn, err := net.DialTimeout("tcp", c.addr, time.Second)
				if err != nil {
					return true
				}
				conn.Close()
				return false
			}
			goAwayDrill(t, c, c.addr, up, stop, func(cc *http2.ClientConn) bool {
				return closed() && e.p.srv.Addr(removed) == "" && cc.State().Closed
			})
		})
	}
}

// TestE2EHTTP2ReloadProtocols: a reload that changes protocols or the
// http2 block applies to new connections; connections already open go on
// as they were.
func TestE2EHTTP2ReloadProtocols(t *testing.T) {
	up := echoUpstream(t)
	e := startH2Proxy(t, "http2: {max_concurrent_streams: 50}", "", oneRoute(up.addr()))
	cs := e.clients(t)
	h2c, h2 := cs[1], cs[0]
	oldTLS := dialH2(t, h2, e.tlsAddr)
	oldH2C := dialH2(t, h2c, e.h2cAddr)
	// A request on each makes them connections the server has taken as
	// HTTP/2 (and brings the server's SETTINGS).
	for name, cc := range map[string]*http2.ClientConn{"h2": oldTLS, "h2c": oldH2C} {
		if status, _, err := ccGet(cc, map[string]string{"h2": "https", "h2c": "http"}[name], "/"); err != nil || status != 200 {
			t.Fatalf("%s before the reload: got %d, %v; want 200", name, status, err)
		}
	}
	if got := oldTLS.State().MaxConcurrentStreams; got != 50 {
		t.Errorf("max_concurrent_streams before the reload: got %d; want 50", got)
	}

	cfg := e.p.srv.RunningConfig()
	next := *cfg
	next.Listeners = map[string]*config.Listener{}
	for name, l := range cfg.Listeners {
		c := *l
		next.Listeners[name] = &c
	}
	next.Listeners["web"].HTTP2.MaxConcurrentStreams = 7
	next.Listeners["plain"].Protocols = []string{config.ProtocolHTTP1}
	if _, err := e.p.srv.Reload(&next); err != nil {
		t.Fatalf("Reload: %v", err)
	}

	t.Run("new TLS connections get the new http2 block", func(t *testing.T) {
		cc := dialH2(t, h2, e.tlsAddr)
		if _, _, err := ccGet(cc, h2.scheme, "/"); err != nil {
			t.Fatal(err)
		}
		if got := cc.State().MaxConcurrentStreams; got != 7 {
			t.Errorf("got max_concurrent_streams %d; want 7", got)
		}
	})
	t.Run("connections open before keep theirs", func(t *testing.T) {
		for name, cc := range map[string]*http2.ClientConn{"h2": oldTLS, "h2c": oldH2C} {
			scheme := map[string]string{"h2": "https", "h2c": "http"}[name]
			if status, _, err := ccGet(cc, scheme, "/"); err != nil || status != 200 {
				t.Errorf("%s: got %d, %v; want 200", name, status, err)
			}
		}
		if got := oldTLS.State().MaxConcurrentStreams; got != 50 {
			t.Errorf("got max_concurrent_streams %d; want 50", got)
		}
	})
	t.Run("h2c dropped: new connections are HTTP/1.1 only", func(t *testing.T) {
		cc, err := func() (*http2.ClientConn, error) {
			conn, err := net.DialTimeout("tcp", e.h2cAddr, e2eTimeout)
			if err != nil {
				return nil, err
			}
			_ = conn.SetDeadline(time.Now().Add(e2eTimeout))
			return h2c.tr.NewClientConn(conn)
		}()
		if err == nil {
			defer cc.Close()
			if status, _, err := ccGet(cc, "http", "/"); err == nil {
				t.Errorf("h2c after the reload: got %d; want a failure", status)
			}
		}
		if resp := rawGet(t, e.h2cAddr, "example.com", "/"); resp.status() != 200 {
			t.Errorf("HTTP/1.1: got %d; want 200", resp.status())
		}
	})
	t.Run("h2 dropped: ALPN offers http/1.1 only", func(t *testing.T) {
		next2 := next
		next2.Listeners = map[string]*config.Listener{}
		for name, l := range next.Listeners {
			c := *l
			next2.Listeners[name] = &c
		}
		next2.Listeners["web"].Protocols = []string{config.ProtocolHTTP1}
		if _, err := e.p.srv.Reload(&next2); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		c, err := tlsDial(e.tlsAddr, &tls.Config{ServerName: "example.com", RootCAs: e.roots, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("got ALPN %q; want http/1.1", got)
		}
	})
}
