package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// TestE2EGracefulShutdown starts a slow request, shuts down while it is in
// flight, and checks that the request completes, Shutdown waits for it, and
// new connections are refused meanwhile.
func TestE2EGracefulShutdown(t *testing.T) {
	started := make(chan struct{}, 1)
	var shutdownReturned atomic.Bool
	var returnedEarly atomic.Bool
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			_, _ = io.WriteString(w, "fast")
			return
		}
		started <- struct{}{}
		select {
		case <-time.After(500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		if shutdownReturned.Load() {
			returnedEarly.Store(true)
		}
		_, _ = io.WriteString(w, "slow and done")
	}))
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))

	// An idle keep-alive connection opened before the shutdown must not
	// hold it up.
	idle := dialRaw(t, p.addr)
	if r := idle.roundTrip("GET /fast HTTP/1.1\r\nHost: app.test\r\n\r\n"); r.status() != 200 || string(r.body) != "fast" {
		t.Fatalf("idle connection warm-up: got %d %q; want 200 \"fast\"", r.status(), r.body)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{}, Timeout: e2eTimeout}
		defer client.CloseIdleConnections()
		resp, err := client.Get("http://" + p.addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{status: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-started:
	case <-time.After(e2eTimeout):
		t.Fatal("the slow request never reached the upstream")
	}

	shutdownErr := make(chan error, 1)
	var shutdownAt atomic.Int64
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := p.shutdown(ctx)
		shutdownAt.Store(time.Now().UnixNano())
		shutdownReturned.Store(true)
		shutdownErr <- err
	}()

	// New connections are refused once the shutdown has started.
	refused := waitFor(2*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	if !refused {
		t.Errorf("dial during shutdown: got connected; want refused")
	}

	var r result
	select {
	case r = <-res:
	case <-time.After(e2eTimeout):
		t.Fatal("the in-flight request never completed")
	}
	if r.err != nil || r.status != 200 || r.body != "slow and done" {
		t.Errorf("in-flight request: got %d %q err %v; want 200 \"slow and done\"", r.status, r.body, r.err)
	}
	select {
	case err := <-shutdownErr:
		if err != nil {
			t.Errorf("Shutdown: got %v; want nil", err)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("Shutdown did not return")
	}
	if returnedEarly.Load() {
		t.Errorf("Shutdown returned while the request was in flight; want it to wait")
	}
	if !idle.closedByPeer(2 * time.Second) {
		t.Errorf("idle keep-alive connection after Shutdown: got open; want closed")
	}
}

// TestE2EShutdownTwice checks that a second Shutdown (a second signal, or
// a caller's defer) is harmless.
func TestE2EShutdownTwice(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) { return okResponse("ok"), false })
	cases := []struct {
		name      string
		accessLog string
	}{
		{"access log off", "off"},
		{"access log to a file", filepath.Join(t.TempDir(), "access.jsonl")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			yaml := strings.Replace(oneUpstreamConfig(up.addr(), "", "", ""), `path: "off"`, fmt.Sprintf("path: %q", tc.accessLog), 1)
			p := startProxy(t, yaml)
			if r := rawGet(t, p.addr, "app.test", "/"); r.status() != 200 {
				t.Fatalf("status: got %d; want 200", r.status())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := p.shutdown(ctx); err != nil {
				t.Fatalf("first Shutdown: %v", err)
			}
			var second error
			func() {
				defer func() {
					if v := recover(); v != nil {
						second = fmt.Errorf("panic: %v", v)
					}
				}()
				second = p.srv.Shutdown(ctx)
			}()
			if second != nil {
				t.Errorf("second Shutdown: got %v; want nil", second)
			}
		})
	}
}

// TestE2EKeepAliveReuse sends 100 sequential requests on one client
// connection and checks that the proxy reuses its upstream connections.
func TestE2EKeepAliveReuse(t *testing.T) {
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
	}))
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	const n = 100
	for i := 0; i < n; i++ {
		var req, want string
		if i%2 == 0 {
			req = fmt.Sprintf("GET /r/%d HTTP/1.1\r\nHost: app.test\r\n\r\n", i)
			want = fmt.Sprintf("GET /r/%d 0", i)
		} else {
			req = fmt.Sprintf("POST /r/%d HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc", i)
			want = fmt.Sprintf("POST /r/%d 3", i)
		}
		resp := c.roundTrip(req)
		if resp.status() != 200 || string(resp.body) != want {
			t.Fatalf("request %d: got %d %q; want 200 %q", i, resp.status(), resp.body, want)
		}
	}
	if got := up.conns.Load(); got > 2 {
		t.Errorf("upstream connections for %d sequential requests: got %d; want 1 or 2", n, got)
	}
}

// TestE2EKeepAlivePipelined writes several requests at once on one
// connection and checks the answers come back in order.
func TestE2EKeepAlivePipelined(t *testing.T) {
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		_, path, _ := strings.Cut(req.first, " ")
		path, _, _ = strings.Cut(path, " ")
		return okResponse(path), false
	})
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	var all strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&all, "GET /p%d HTTP/1.1\r\nHost: app.test\r\n\r\n", i)
	}
	if _, err := io.WriteString(c.conn, all.String()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		resp, err := readRawResponse(c.br, "GET")
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if want := fmt.Sprintf("/p%d", i); resp.status() != 200 || string(resp.body) != want {
			t.Errorf("response %d: got %d %q; want 200 %q", i, resp.status(), resp.body, want)
		}
	}
}

// TestE2EPipelinedDuringExchange: a client that sends its next request
// while the proxy is still waiting for the target's answer to the one
// before gets both answers at once, not after the idle timeout (60 s here).
// The second request's bytes reach the socket, not the read buffer, while
// the first is at the target; whatever waits for the next request after the
// first answer must see them. (A wait that starts after the answer is
// written and forgets readiness reported before it, as a raw read does,
// would not.)
func TestE2EPipelinedDuringExchange(t *testing.T) {
	const slow = 150 * time.Millisecond
	up := startRawUpstream(t, func(req *rawMessage) (string, bool) {
		if strings.Contains(req.first, "/slow") {
			time.Sleep(slow)
		}
		return okResponse(req.first), false
	})
	dir := t.TempDir()
	ca := testcert.NewCA(t, "Pipeline CA")
	cf, kf := ca.Issue(t, "pipe", time.Time{}, false, "pipe.example.com").Write(t, dir, "pipe")
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			listener := ""
			if scheme == "https" {
				listener = staticTLSYAML("", [2]string{cf, kf})
			}
			p := startProxy(t, oneUpstreamConfig(up.addr(), listener, "", ""))
			var c net.Conn
			if scheme == "https" {
				tc, err := tlsDial(p.addr, &tls.Config{ServerName: "pipe.example.com", RootCAs: testcert.Pool(ca.PEM)})
				if err != nil {
					t.Fatal(err)
				}
				defer tc.Close()
				c = tc
			} else {
				c = dialRaw(t, p.addr).conn
			}
			br := bufio.NewReader(c)
			for round := range 3 {
				start := time.Now()
				if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				time.Sleep(slow / 3) // the first request is at the target now
				if _, err := io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: pipe.example.com\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				for _, want := range []string{"/slow", "/fast"} {
					resp, err := readRawResponse(br, "GET")
					if err != nil {
						t.Fatalf("round %d: answer to %s: %v", round, want, err)
					}
					if resp.status() != 200 || !strings.Contains(string(resp.body), want) {
						t.Fatalf("round %d: got %d %q; want 200 answering %s", round, resp.status(), resp.body, want)
					}
				}
				if took := time.Since(start); took > slow+time.Second {
					t.Errorf("round %d: both answers took %v; want about %v", round, took, slow)
				}
			}
		})
	}
}
