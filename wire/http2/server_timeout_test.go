package http2

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/wire"
)

// TestBodyTimeout checks a client that stops sending its body makes the
// pipeline's read fail with os.ErrDeadlineExceeded, while one that keeps
// sending is not cut.
func TestBodyTimeout(t *testing.T) {
	errc := make(chan error, 1)
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		b, err := io.ReadAll(ctx.Request.BodyStream())
		if err == nil && string(b) != "abcd" {
			err = errors.New("got body " + string(b))
		}
		errc <- err
		ctx.SetStatusCode(200)
	})
	ts := startServer(t, Config{BodyTimeout: time.Second}, h, nil)
	post := [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}

	rc := dialRaw(t, ts.addr)
	rc.headers(1, false, post)
	_ = rc.fr.WriteData(1, false, []byte("ab"))
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a stalled body: got %v; want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled body was never cut")
	}

	rc = dialRaw(t, ts.addr)
	rc.headers(1, false, post)
	for i, c := range "abcd" {
		time.Sleep(200 * time.Millisecond) // each wait well under the timeout
		if err := rc.fr.WriteData(1, i == 3, []byte(string(c))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		t.Errorf("a slow body that keeps coming: got %v; want it read whole", err)
	}
}

// endless is a response body that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) { return len(p), nil }

// TestSendTimeout checks a client that stops reading a response is
// disconnected after SendTimeout.
func TestSendTimeout(t *testing.T) {
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		ctx.Response.SetBodyStream(endless{}, -1)
	})
	ts := startServer(t, Config{SendTimeout: 300 * time.Millisecond}, h, nil)
	rc := dialRaw(t, ts.addr)
	// Open every window, so that only the socket can hold the server up.
	_ = rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	_ = rc.fr.WriteWindowUpdate(0, 1<<31-1-65535)
	rc.get(1, "/")
	// Read nothing until the server gives up on the connection.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ts.mu.Lock()
		n := len(ts.conns)
		ts.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("the server still holds a connection whose client reads nothing")
}
