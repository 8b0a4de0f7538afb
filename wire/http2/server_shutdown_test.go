package http2

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestShutdownGraceful checks that Shutdown sends GOAWAY at once, serves
// no new stream nor connection, lets the slow streams in flight finish
// (one from x/net's client, one from a raw framer), then returns.
func TestShutdownGraceful(t *testing.T) {
	t.Run("h2c", func(t *testing.T) { testShutdownGraceful(t, nil) })
	t.Run("TLS", func(t *testing.T) { testShutdownGraceful(t, serverTLSConfig(t)) })
}

func testShutdownGraceful(t *testing.T, serverTLS *tls.Config) {
	h := newHoldHandler()
	ts := startServer(t, Config{}, h, serverTLS)
	rc := ts.dial(t)
	rc.get(1, "/slow")
	type result struct {
		body string
		err  error
	}
	clientDone := make(chan result, 1)
	go func() {
		resp, err := ts.client().Get(ts.url("/slow"))
		if err != nil {
			clientDone <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		clientDone <- result{string(b), err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for h.n() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h.n() != 2 {
		t.Fatalf("got %d streams in flight; want 2", h.n())
	}

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- ts.Shutdown(ctx)
	}()
	g := rc.goAway()
	if g == nil || g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
		t.Fatalf("got GOAWAY %+v; want NO_ERROR with last stream 1", g)
	}
	rc.get(3, "/fast") // after the GOAWAY: dropped
	if c, err := net.Dial("tcp", ts.addr); err == nil {
		// Shutdown refuses new connections: this one is closed unserved.
		_, _ = io.WriteString(c, http2.ClientPreface)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := io.Copy(io.Discard, c); n != 0 {
			t.Errorf("a connection made after Shutdown got %d bytes; want it closed unserved", n)
		}
		c.Close()
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with streams in flight; want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}

	close(h.release)
	if got := rc.outcome(1); got != "status 200" {
		t.Errorf("the raw stream in flight: got %q; want status 200", got)
	}
	if r := <-clientDone; r.err != nil || r.body != "ok" {
		t.Errorf("x/net's client in flight: got %q, %v; want ok", r.body, r.err)
	}
	select {
	case err := <-shutdown:
		if err != nil {
			t.Errorf("Shutdown: got %v; want nil", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Shutdown did not return after the streams ended")
	}
	if n := h.n(); n != 2 {
		t.Errorf("the handler ran %d times; want 2 (nothing after the GOAWAY)", n)
	}
	if !rc.closed(time.Second) {
		t.Error("the connection is open after Shutdown returned")
	}
}

// TestShutdownDeadline checks that Shutdown closes what is left when its
// context ends.
func TestShutdownDeadline(t *testing.T) {
	h := newHoldHandler()
	defer close(h.release)
	ts := startServer(t, Config{}, h, nil)
	rc := dialRaw(t, ts.addr)
	rc.get(1, "/slow")
	deadline := time.Now().Add(5 * time.Second)
	for h.n() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v; want context.DeadlineExceeded", err)
	}
	if !rc.closed(2 * time.Second) {
		t.Error("the connection is open after Shutdown gave up; want it closed")
	}
}

// TestIdleTimeout checks a connection without a stream for IdleTimeout
// gets a GOAWAY and is closed.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 200 * time.Millisecond}, &okHandler{}, nil)
	rc := dialRaw(t, ts.addr)
	rc.get(1, "/")
	if got := rc.outcome(1); got != "status 200" {
		t.Fatalf("got %q; want status 200", got)
	}
	g := rc.goAway()
	if g == nil || g.ErrCode != http2.ErrCodeNo {
		t.Fatalf("got GOAWAY %+v; want NO_ERROR", g)
	}
	if !rc.closed(3 * time.Second) {
		t.Error("the idle connection is still open; want it closed")
	}
}
