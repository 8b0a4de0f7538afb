package http2

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// bodyHandler answers 200, after reading the request body, if any, to
// the end; it records its calls and the error the body ended with.
type bodyHandler struct {
	mu      sync.Mutex
	calls   int
	bodyErr error
}

func (h *bodyHandler) ServeWire(ctx *fasthttp.RequestCtx, s wire.Stream) {
	var err error
	if r := ctx.Request.BodyStream(); r != nil {
		_, err = io.Copy(io.Discard, r)
	}
	h.mu.Lock()
	h.calls++
	h.bodyErr = err
	h.mu.Unlock()
	ctx.SetStatusCode(200)
}

// TestRFC9113Refusals sends, frame by frame, each request HTTP/2 forbids
// or an HTTP/1.1 upstream could read differently, and checks it is reset
// or refused before the pipeline sees it. by says which layer refuses it:
// x/net/http2 or this package (rampart).
func TestRFC9113Refusals(t *testing.T) {
	base := func(extra ...[2]string) [][2]string {
		return append([][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", "/"}}, extra...)
	}
	post := func(extra ...[2]string) [][2]string {
		return append([][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", "/"}}, extra...)
	}
	tests := []struct {
		name   string
		by     string
		fields [][2]string
		data   []string // DATA frames after HEADERS; the last ends the stream
		want   string   // outcome
		runs   bool     // the handler runs (body errors are seen only once it reads)
	}{
		{"connection", "x/net", base([2]string{"connection", "keep-alive"}), nil, "status 400", false},
		{"keep-alive", "x/net", base([2]string{"keep-alive", "timeout=5"}), nil, "status 400", false},
		{"proxy-connection", "x/net", base([2]string{"proxy-connection", "close"}), nil, "status 400", false},
		{"transfer-encoding", "x/net", base([2]string{"transfer-encoding", "chunked"}), nil, "status 400", false},
		{"upgrade", "x/net", base([2]string{"upgrade", "websocket"}), nil, "status 400", false},
		{"te gzip", "x/net", base([2]string{"te", "gzip"}), nil, "status 400", false},
		{"te empty", "rampart", base([2]string{"te", ""}), nil, "status 400", false},
		{"te twice", "x/net", base([2]string{"te", "trailers"}, [2]string{"te", "trailers"}), nil, "status 400", false},
		{"CR in value", "x/net", base([2]string{"x-a", "a\rb"}), nil, "reset PROTOCOL_ERROR", false},
		{"LF in value", "x/net", base([2]string{"x-a", "a\nx-b: c"}), nil, "reset PROTOCOL_ERROR", false},
		{"NUL in value", "x/net", base([2]string{"x-a", "a\x00b"}), nil, "reset PROTOCOL_ERROR", false},
		{"CR in :path", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/\r\nx: y"}}, nil, "reset PROTOCOL_ERROR", false},
		{"leading space in value", "rampart", base([2]string{"x-a", " a"}), nil, "status 400", false},
		{"trailing tab in value", "rampart", base([2]string{"x-a", "a\t"}), nil, "status 400", false},
		{"uppercase name", "x/net", base([2]string{"X-Upper", "a"}), nil, "reset PROTOCOL_ERROR", false},
		{"space in name", "x/net", base([2]string{"x a", "a"}), nil, "reset PROTOCOL_ERROR", false},
		{"colon in name", "x/net", base([2]string{"x:a", "a"}), nil, "reset PROTOCOL_ERROR", false},
		{"no :method", "x/net", [][2]string{{":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"no :path", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}}, nil, "reset PROTOCOL_ERROR", false},
		{"no :scheme", "x/net", [][2]string{{":method", "GET"}, {":authority", "a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"bad :scheme", "x/net", [][2]string{{":method", "GET"}, {":scheme", "ftp"}, {":authority", "a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"duplicate :path", "x/net", base([2]string{":path", "/x"}), nil, "reset PROTOCOL_ERROR", false},
		{"duplicate :method", "x/net", [][2]string{{":method", "GET"}, {":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"unknown pseudo", "x/net", base([2]string{":foo", "bar"}), nil, "reset PROTOCOL_ERROR", false},
		{"response pseudo", "x/net", base([2]string{":status", "200"}), nil, "reset PROTOCOL_ERROR", false},
		{"pseudo after regular", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {"x-a", "b"}, {":authority", "a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"empty :path", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", ""}}, nil, "reset PROTOCOL_ERROR", false},
		{":path without slash", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "a/b"}}, nil, "reset PROTOCOL_ERROR", false},
		{":path bad escape", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/a%zz"}}, nil, "reset PROTOCOL_ERROR", false},
		{":path * on GET", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "*"}}, nil, "status 400", false},
		{":path with space", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/a b"}}, nil, "status 400", false},
		{":path with fragment", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/a#b"}}, nil, "status 400", false},
		{":path non-ASCII", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/caf\xc3\xa9"}}, nil, "status 400", false},
		{":method with space", "rampart", [][2]string{{":method", "GET /x"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}}, nil, "status 400", false},
		{"CONNECT", "rampart", [][2]string{{":method", "CONNECT"}, {":authority", "example.com:443"}}, nil, "status 405", false},
		{"CONNECT with :path", "x/net", [][2]string{{":method", "CONNECT"}, {":authority", "example.com:443"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"CONNECT without :authority", "x/net", [][2]string{{":method", "CONNECT"}}, nil, "reset PROTOCOL_ERROR", false},
		{"extended CONNECT", "x/net", [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/chat"}}, nil, "reset PROTOCOL_ERROR", false},
		{"host disagrees with :authority", "x/net", base([2]string{"host", "evil.example"}), nil, "reset PROTOCOL_ERROR", false},
		{"two host fields", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "a"}, {"host", "b"}}, nil, "reset PROTOCOL_ERROR", false},
		{"no :authority nor host", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}}, nil, "status 400", false},
		{"userinfo in :authority", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "u@a"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"space in :authority", "x/net", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a b"}, {":path", "/"}}, nil, "reset PROTOCOL_ERROR", false},
		{"sub-delims in :authority", "rampart", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a;b=c"}, {":path", "/"}}, nil, "status 400", false},
		{"content-length not a number", "rampart", base([2]string{"content-length", "abc"}), nil, "status 400", false},
		{"content-length signed", "rampart", post([2]string{"content-length", "+0"}), nil, "status 400", false},
		{"two content-length", "rampart", post([2]string{"content-length", "3"}, [2]string{"content-length", "3"}), []string{"abc"}, "status 400", false},
		{"content-length without body", "rampart", base([2]string{"content-length", "5"}), nil, "status 400", false},
		{"content-length below DATA", "x/net", post([2]string{"content-length", "3"}), []string{"abcde"}, "reset PROTOCOL_ERROR", true},
		{"content-length above DATA", "x/net", post([2]string{"content-length", "5"}), []string{"abc"}, "status 200", true},
		{"two content-type", "rampart", post([2]string{"content-type", "text/plain"}, [2]string{"content-type", "application/json"}), []string{""}, "status 400", false},
	}
	h := &bodyHandler{}
	ts := startServer(t, Config{}, h, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.mu.Lock()
			h.calls, h.bodyErr = 0, nil
			h.mu.Unlock()
			rc := dialRaw(t, ts.addr)
			rc.headers(1, len(tc.data) == 0, tc.fields)
			for i, d := range tc.data {
				if err := rc.fr.WriteData(1, i == len(tc.data)-1, []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			got := rc.outcome(1)
			if got != tc.want {
				t.Errorf("refused by %s: got %q; want %q", tc.by, got, tc.want)
			}
			if !tc.runs {
				if n := func() int { h.mu.Lock(); defer h.mu.Unlock(); return h.calls }(); n != 0 {
					t.Errorf("the handler ran %d times; want 0", n)
				}
				return
			}
			// The handler runs: its read of the body must end in an
			// error, not a clean EOF. The client may see the reset before
			// the handler has returned: wait for it (bounded), so that it
			// is not counted in the next case.
			var calls int
			var bodyErr error
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				h.mu.Lock()
				calls, bodyErr = h.calls, h.bodyErr
				h.mu.Unlock()
				if calls > 0 || time.Now().After(deadline) {
					break
				}
			}
			if calls != 1 {
				t.Fatalf("the handler ran %d times; want 1", calls)
			}
			if bodyErr == nil {
				t.Errorf("the handler read the body to a clean end; want an error")
			}
		})
	}
}

// TestRFC9113Accepted checks the lawful neighbours of the refusals go
// through.
func TestRFC9113Accepted(t *testing.T) {
	tests := []struct {
		name   string
		fields [][2]string
	}{
		{"te trailers", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {"te", "trailers"}}},
		{"host equal to :authority", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a:8080"}, {":path", "/"}, {"host", "a:8080"}}},
		{"host without :authority", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "a"}}},
		{"OPTIONS *", [][2]string{{":method", "OPTIONS"}, {":scheme", "http"}, {":authority", "a"}, {":path", "*"}}},
		{"IPv6 :authority", [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "[::1]:443"}, {":path", "/"}}},
		{"space inside a value", [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {"user-agent", "a b"}}},
	}
	h := &okHandler{}
	ts := startServer(t, Config{}, h, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, ts.addr)
			rc.headers(1, true, tc.fields)
			if got := rc.outcome(1); got != "status 200" {
				t.Errorf("got %q; want %q", got, "status 200")
			}
		})
	}
	if got, want := h.n(), len(tests); got != want {
		t.Errorf("the handler ran %d times; want %d", got, want)
	}
}
