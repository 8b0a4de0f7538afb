package http2

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
	"github.com/rampart-proxy/rampart/wire/http1"
)

// failingBody gives some bytes, then an error: an upstream cut off part
// way through its answer.
type failingBody struct{ sent bool }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.sent {
		return 0, errors.New("upstream gone")
	}
	b.sent = true
	return copy(p, "partial"), nil
}

// TestRunOnWorkers serves streams on HTTP/1.1's worker pool
// (Config.Run = http1.Workers.Go), as the listeners do, and checks that
// what happens on the worker reaches the client as it would from x/net's
// goroutine: the answer, a refusal, a panic and a body cut short (both a
// reset stream), and that the connection serves the next stream after
// each.
func TestRunOnWorkers(t *testing.T) {
	workers := http1.NewWorkers()
	defer workers.Close()
	var runs atomic.Int64
	cfg := Config{
		Run:    func(fn func()) { runs.Add(1); workers.Go(fn) },
		Logger: slog.New(slog.DiscardHandler), // the panic's stack
	}
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		switch string(ctx.Path()) {
		case "/panic":
			panic("a bug in the pipeline")
		case "/cut":
			ctx.Response.SetBodyStream(&failingBody{}, -1)
		default:
			ctx.Response.Header.Set("Content-Type", "text/plain")
			ctx.SetBodyString("served " + string(ctx.Path()))
		}
	})
	ts := startServer(t, cfg, h, nil)
	c := ts.client()
	tests := []struct {
		name, path string
		method     string
		wantStatus int    // 0: the stream is reset
		wantBody   string // with wantStatus
	}{
		{name: "served", method: "GET", path: "/a", wantStatus: 200, wantBody: "served /a"},
		{name: "refused by the wire", method: "CONNECT", path: "/", wantStatus: 405, wantBody: "CONNECT is not supported\n"},
		{name: "panic", method: "GET", path: "/panic"},
		{name: "body cut short", method: "GET", path: "/cut"},
		{name: "served after", method: "GET", path: "/b", wantStatus: 200, wantBody: "served /b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := runs.Load()
			req, err := http.NewRequest(tc.method, ts.url(tc.path), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if runs.Load() == before {
				// The stream, and the flushes of its answer.
				t.Errorf("got no run on a worker; want at least one")
			}
			if tc.wantStatus == 0 {
				if err == nil || !strings.Contains(err.Error(), "stream error") {
					t.Fatalf("got %v; want a reset stream", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %q; want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}
