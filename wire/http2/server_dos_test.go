package http2

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/wire"
)

// holdHandler blocks each stream until release is closed (or 10 s).
type holdHandler struct {
	release chan struct{}
	mu      sync.Mutex
	calls   int
	peers   map[string]bool // the connections streams came on
}

func newHoldHandler() *holdHandler {
	return &holdHandler{release: make(chan struct{}), peers: map[string]bool{}}
}

func (h *holdHandler) ServeWire(ctx *fasthttp.RequestCtx, s wire.Stream) {
	h.mu.Lock()
	h.calls++
	h.peers[ctx.RemoteAddr().String()] = true
	h.mu.Unlock()
	if !strings.HasPrefix(string(ctx.Path()), "/fast") {
		select {
		case <-h.release:
		case <-s.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}
	ctx.SetBodyString("ok")
}

// TestAttacks performs each attack on one connection with a raw framer
// and checks that it is cut as it should be, and that a well-behaved
// client on another connection is still served.
func TestAttacks(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		attack func(t *testing.T, rc *rawClient)
		want   string // outcome seen by the attacker
	}{
		{
			// CVE-2023-44487: open and reset streams as fast as possible.
			name: "rapid reset",
			cfg:  Config{MaxResetsPerSecond: 10},
			attack: func(t *testing.T, rc *rawClient) {
				for id := uint32(1); id < 2000; id += 2 {
					rc.get(id, "/")
					if err := rc.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
						return // cut
					}
				}
			},
			want: "goaway ENHANCE_YOUR_CALM",
		},
		{
			// CVE-2024-27316 class: a header block that never ends,
			// in empty CONTINUATION frames.
			name: "CONTINUATION flood, empty frames",
			attack: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.block([][2]string{{":method", "GET"}}), EndHeaders: false})
				for range 10000 {
					if rc.fr.WriteContinuation(1, false, nil) != nil {
						return
					}
				}
			},
			want: "goaway ENHANCE_YOUR_CALM",
		},
		{
			// The same with full frames of HPACK table size updates,
			// which decode to no field and so escape x/net's bound.
			name: "CONTINUATION flood, no-op HPACK",
			attack: func(t *testing.T, rc *rawClient) {
				_ = rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x20}, EndHeaders: false})
				frag := bytes.Repeat([]byte{0x20}, 16<<10)
				for range 1000 {
					if rc.fr.WriteContinuation(1, false, frag) != nil {
						return
					}
				}
			},
			want: "goaway ENHANCE_YOUR_CALM",
		},
		{
			// CVE-2019-9512.
			name: "PING flood",
			cfg:  Config{MaxControlFramesPerSecond: 10},
			attack: func(t *testing.T, rc *rawClient) {
				for i := range 10000 {
					if rc.fr.WritePing(false, [8]byte{byte(i)}) != nil {
						return
					}
				}
			},
			want: "goaway ENHANCE_YOUR_CALM",
		},
		{
			// CVE-2019-9515.
			name: "SETTINGS flood",
			cfg:  Config{MaxControlFramesPerSecond: 10},
			attack: func(t *testing.T, rc *rawClient) {
				for range 10000 {
					if rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535}) != nil {
						return
					}
				}
			},
			want: "goaway ENHANCE_YOUR_CALM",
		},
		{
			// x/net: a stream beyond SETTINGS_MAX_CONCURRENT_STREAMS
			// is reset.
			name: "concurrent streams",
			cfg:  Config{MaxConcurrentStreams: 4},
			attack: func(t *testing.T, rc *rawClient) {
				for id := uint32(1); id <= 9; id += 2 {
					rc.get(id, "/")
				}
			},
			want: "reset PROTOCOL_ERROR", // stream 9, the fifth
		},
		{
			// x/net: a header list over SETTINGS_MAX_HEADER_LIST_SIZE
			// is answered 431 without reaching the pipeline.
			name: "header list size",
			cfg:  Config{MaxHeaderListSize: 4096},
			attack: func(t *testing.T, rc *rawClient) {
				rc.headers(1, true, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/fast"}, {"x-big", strings.Repeat("a", 3000)}, {"x-big2", strings.Repeat("b", 3000)}})
			},
			want: "status 431",
		},
		{
			// x/net: one header block far over the limit closes the
			// connection.
			name: "header block far over the limit",
			cfg:  Config{MaxHeaderListSize: 4096},
			attack: func(t *testing.T, rc *rawClient) {
				rc.headers(1, true, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/fast"}, {"x-big", strings.Repeat("a", 15000)}})
			},
			want: "goaway COMPRESSION_ERROR", // a string longer than the list may be
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHoldHandler()
			defer close(h.release)
			ts := startServer(t, tc.cfg, h, nil)
			rc := dialRaw(t, ts.addr)
			done := make(chan struct{})
			go func() {
				defer close(done)
				tc.attack(t, rc)
			}()
			id := uint32(1)
			if tc.name == "concurrent streams" {
				id = 9
			}
			got := rc.outcome(id)
			if got != tc.want {
				t.Errorf("the attacker got %q; want %q", got, tc.want)
			}
			if strings.HasPrefix(tc.want, "goaway") && !rc.closed(5*time.Second) {
				t.Errorf("the connection is still open 5 s after the GOAWAY; want it closed")
			}
			_ = rc.c.Close()
			<-done
			// A well-behaved client is served.
			c := ts.client()
			if got := mustGet(t, c, ts.url("/fast")); got != "ok" {
				t.Errorf("a well-behaved client got %q; want ok", got)
			}
		})
	}
}

// TestStreamBudgetPerConnection checks that a connection's last stream
// is followed by a graceful GOAWAY naming it, that later streams on it are
// not served, and that x/net's client carries on over new connections.
func TestStreamBudgetPerConnection(t *testing.T) {
	h := newHoldHandler()
	close(h.release)
	ts := startServer(t, Config{MaxStreamsPerConnection: 3}, h, nil)

	rc := dialRaw(t, ts.addr)
	for id := uint32(1); id <= 3; id += 2 {
		rc.get(id, "/fast")
		if got := rc.outcome(id); got != "status 200" {
			t.Fatalf("stream %d: got %q; want status 200", id, got)
		}
	}
	rc.get(5, "/fast")
	var g *http2.GoAwayFrame
	status := ""
	for g == nil || status == "" {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("got GOAWAY %+v and stream 5 %q before %v; want both", g, status, err)
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			g = f
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
		}
	}
	if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 5 || status != "200" {
		t.Fatalf("got GOAWAY %v last stream %d, stream 5 status %q; want NO_ERROR, 5, 200", g.ErrCode, g.LastStreamID, status)
	}
	rc.get(7, "/fast")
	if !rc.closed(5 * time.Second) {
		t.Errorf("the connection is still open after its budget; want it closed")
	}
	if n := h.n(); n != 3 {
		t.Errorf("the handler ran %d times; want 3", n)
	}

	c := ts.client()
	for i := range 10 {
		if got := mustGet(t, c, ts.url("/fast")); got != "ok" {
			t.Fatalf("request %d: got %q; want ok", i, got)
		}
	}
	h.mu.Lock()
	conns := len(h.peers)
	h.mu.Unlock()
	if conns < 4 { // the raw one, then at least 10/3 for the client
		t.Errorf("got %d connections; want at least 4", conns)
	}
}

func (h *holdHandler) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// TestStreamBudgetPerIP checks the bound on streams open at once from one
// address across its connections.
func TestStreamBudgetPerIP(t *testing.T) {
	h := newHoldHandler()
	ts := startServer(t, Config{MaxStreamsPerIP: 3}, h, nil)
	a, b := dialRaw(t, ts.addr), dialRaw(t, ts.addr)
	a.get(1, "/")
	a.get(3, "/")
	b.get(1, "/")
	deadline := time.Now().Add(5 * time.Second)
	for h.n() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.get(3, "/")
	if got := b.outcome(3); got != "status 429" {
		t.Errorf("the fourth stream: got %q; want status 429", got)
	}
	gc := dialRaw(t, ts.addr)
	gc.headers(1, true, [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/svc/M"}, {"content-type", "application/grpc"}})
	if got := gc.outcome(1); got != "status 200" || gc.fields["grpc-status"] != "8" {
		t.Errorf("a gRPC stream over the bound: got %q grpc-status %q; want status 200, grpc-status 8", got, gc.fields["grpc-status"])
	}
	close(h.release)
	got := map[uint32]string{}
	for len(got) < 2 {
		f, err := a.fr.ReadFrame()
		if err != nil {
			t.Fatalf("got %v before %v; want streams 1 and 3 answered", got, err)
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			got[mh.StreamID] = mh.PseudoValue("status")
		}
	}
	if got[1] != "200" || got[3] != "200" {
		t.Errorf("got statuses %v; want 200 for streams 1 and 3", got)
	}
	c := ts.client()
	if got := mustGet(t, c, ts.url("/fast")); got != "ok" {
		t.Errorf("after the streams ended: got %q; want ok", got)
	}
}
