package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/wire"
)

// seen is what a handler saw of one request.
type seen struct {
	method, uri, host, cookie, te, body, subject, peer string
	xa                                                 []string
	proto                                              wire.Protocol
	tls, hijack                                        bool
	contentLength                                      int
}

type recordHandler struct {
	mu   sync.Mutex
	last seen
}

func (h *recordHandler) ServeWire(ctx *fasthttp.RequestCtx, s wire.Stream) {
	r := &ctx.Request
	v := seen{
		method:        string(r.Header.Method()),
		uri:           string(r.Header.RequestURI()),
		host:          string(r.Header.Host()),
		cookie:        string(r.Header.Peek("Cookie")),
		te:            string(r.Header.Peek("Te")),
		proto:         s.Protocol(),
		tls:           s.TLS(),
		subject:       string(s.ClientSubject()),
		peer:          s.Peer().String(),
		contentLength: r.Header.ContentLength(),
		hijack:        s.Hijack(func(net.Conn, io.Reader, io.Writer) {}),
	}
	for _, x := range r.Header.PeekAll("X-A") {
		v.xa = append(v.xa, string(x))
	}
	if bs := r.BodyStream(); bs != nil {
		b, _ := io.ReadAll(bs)
		v.body = string(b)
	} else {
		v.body = string(r.Body())
	}
	h.mu.Lock()
	h.last = v
	h.mu.Unlock()
	ctx.SetStatusCode(200)
}

func (h *recordHandler) get() seen {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// TestRequestTranslation sends requests with x/net's client over TLS with
// a client certificate and checks what the pipeline gets.
func TestRequestTranslation(t *testing.T) {
	clientCert, clientLeaf := testCert(t, "client-one")
	pool := x509.NewCertPool()
	pool.AddCert(clientLeaf)
	stls := serverTLSConfig(t)
	stls.ClientCAs = pool
	stls.ClientAuth = tls.RequireAndVerifyClientCert
	h := &recordHandler{}
	ts := startServer(t, Config{}, h, stls)
	c := ts.client()
	c.Transport.(*http2.Transport).TLSClientConfig.Certificates = []tls.Certificate{clientCert}

	tests := []struct {
		name   string
		method string
		path   string
		body   io.Reader
		header map[string][]string
		want   seen
	}{
		{
			name: "GET", method: "GET", path: "/a/b?q=1&r=%20",
			header: map[string][]string{"X-A": {"1", "2"}, "Te": {"trailers"}},
			want:   seen{method: "GET", uri: "/a/b?q=1&r=%20", xa: []string{"1", "2"}, te: "trailers", contentLength: 0},
		},
		{
			name: "POST sized", method: "POST", path: "/up", body: strings.NewReader("hello"),
			want: seen{method: "POST", uri: "/up", body: "hello", contentLength: 5},
		},
		{
			name: "POST streamed", method: "POST", path: "/up", body: io.MultiReader(strings.NewReader("str"), strings.NewReader("eamed")),
			want: seen{method: "POST", uri: "/up", body: "streamed", contentLength: -1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, ts.url(tc.path), tc.body)
			if err != nil {
				t.Fatal(err)
			}
			for k, vv := range tc.header {
				req.Header[k] = vv
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := h.get()
			w := tc.want
			if got.method != w.method || got.uri != w.uri || got.body != w.body || got.te != w.te || got.contentLength != w.contentLength {
				t.Errorf("got method %q uri %q body %q te %q content-length %d; want %q %q %q %q %d",
					got.method, got.uri, got.body, got.te, got.contentLength, w.method, w.uri, w.body, w.te, w.contentLength)
			}
			if strings.Join(got.xa, ",") != strings.Join(w.xa, ",") {
				t.Errorf("got X-A %q; want %q", got.xa, w.xa)
			}
			if got.host != ts.addr {
				t.Errorf("got host %q; want %q", got.host, ts.addr)
			}
			if got.proto != wire.HTTP2 || !got.tls || got.peer != "127.0.0.1" || got.hijack {
				t.Errorf("got protocol %v tls %v peer %q hijack %v; want HTTP/2.0 true 127.0.0.1 false", got.proto, got.tls, got.peer, got.hijack)
			}
			if want := "CN=client-one,O=Rampart Test"; got.subject != want {
				t.Errorf("got client subject %q; want %q", got.subject, want)
			}
		})
	}
}

// TestCookieFieldsJoined checks that cookie fields sent apart (RFC 9113
// section 8.2.3) reach the pipeline as one, joined with "; ".
func TestCookieFieldsJoined(t *testing.T) {
	h := &recordHandler{}
	ts := startServer(t, Config{}, h, nil)
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {"cookie", "a=1"}, {"cookie", "b=2"}})
	if got := rc.outcome(1); got != "status 200" {
		t.Fatalf("got %q; want status 200", got)
	}
	if got, want := h.get().cookie, "a=1; b=2"; got != want {
		t.Errorf("got cookie %q; want %q", got, want)
	}
}

// TestResponseTranslation checks status, fields, connection-specific
// fields dropped and a whole body.
func TestResponseTranslation(t *testing.T) {
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		ctx.SetStatusCode(201)
		ctx.Response.Header.Set("Connection", "keep-alive")
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.Response.Header.Set("Proxy-Connection", "keep-alive")
		ctx.Response.Header.Set("Upgrade", "h2c")
		ctx.Response.Header.Add("X-Multi", "1")
		ctx.Response.Header.Add("X-Multi", "2")
		ctx.Response.Header.Set("Content-Type", "application/json")
		ctx.SetBodyString(`{"ok":true}`)
	})
	ts := startServer(t, Config{}, h, nil)
	resp, err := ts.client().Get(ts.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || string(body) != `{"ok":true}` || resp.ContentLength != 11 {
		t.Errorf("got %d %q length %d; want 201 %q 11", resp.StatusCode, body, resp.ContentLength, `{"ok":true}`)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Transfer-Encoding"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("got %s: %q; want it dropped", k, v)
		}
	}
	if got := strings.Join(resp.Header["X-Multi"], ","); got != "1,2" {
		t.Errorf("got X-Multi %q; want %q", got, "1,2")
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got content-type %q; want application/json", got)
	}
}

// gate is a response body stream that yields "first", then waits for
// open before yielding "second", then ends with trailers.
type gate struct {
	step   int
	open   chan struct{}
	closed chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	g.step++
	switch g.step {
	case 1:
		return copy(p, "first"), nil
	case 2:
		select {
		case <-g.open:
		case <-time.After(5 * time.Second):
			return 0, errors.New("gate never opened")
		}
		return copy(p, "second"), nil
	}
	return 0, io.EOF
}

func (g *gate) FlushEach() bool { return true }
func (g *gate) Trailers() []wire.Field {
	return []wire.Field{{Name: []byte("grpc-status"), Value: []byte("0")}, {Name: []byte("grpc-message"), Value: []byte("fine")}}
}
func (g *gate) Close() error { close(g.closed); return nil }

// TestStreamedResponse checks that a wire.Flusher stream reaches the
// client read by read, that its trailers follow the body, and that the
// stream is closed.
func TestStreamedResponse(t *testing.T) {
	g := &gate{open: make(chan struct{}), closed: make(chan struct{})}
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		ctx.Response.Header.Set("Content-Type", "application/grpc")
		ctx.Response.SetBodyStream(g, -1)
	})
	ts := startServer(t, Config{}, h, nil)
	resp, err := ts.client().Get(ts.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
		t.Fatalf("got %q, %v; want the first read before the second is let go", first, err)
	}
	close(g.open)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Fatalf("got %q, %v; want %q", rest, err, "second")
	}
	if got := resp.Trailer.Get("Grpc-Status") + "/" + resp.Trailer.Get("Grpc-Message"); got != "0/fine" {
		t.Errorf("got trailers %q; want %q", got, "0/fine")
	}
	select {
	case <-g.closed:
	case <-time.After(5 * time.Second):
		t.Error("the body stream was not closed")
	}
}

// TestTrailersOnly checks that a gRPC answer without a body (grpc-status
// in the header) goes out as one HEADERS frame that ends the stream.
func TestTrailersOnly(t *testing.T) {
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		ctx.Response.Header.Set("Content-Type", "application/grpc")
		ctx.Response.Header.Set("Grpc-Status", "14")
		ctx.Response.Header.Set("Grpc-Message", "upstream unavailable")
	})
	ts := startServer(t, Config{}, h, nil)
	rc := dialRaw(t, ts.addr)
	rc.headers(1, true, [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/svc/M"}, {"content-type", "application/grpc"}, {"te", "trailers"}})
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == 1 {
			t.Fatalf("got a DATA frame; want HEADERS only")
		}
		mh, ok := f.(*http2.MetaHeadersFrame)
		if !ok || mh.StreamID != 1 {
			continue
		}
		if !mh.StreamEnded() {
			t.Errorf("got HEADERS without END_STREAM; want a trailers-only response")
		}
		got := map[string]string{}
		for _, f := range mh.Fields {
			got[f.Name] = f.Value
		}
		if got[":status"] != "200" || got["grpc-status"] != "14" || got["grpc-message"] != "upstream unavailable" {
			t.Errorf("got %v; want :status 200, grpc-status 14, grpc-message", got)
		}
		if _, ok := got["content-length"]; ok {
			t.Errorf("got content-length %q; want none", got["content-length"])
		}
		return
	}
}

// TestContextEndsOnReset checks that Stream.Context ends when the client
// resets the stream.
func TestContextEndsOnReset(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		close(started)
		select {
		case <-s.Context().Done():
			ended <- nil
		case <-time.After(5 * time.Second):
			ended <- errors.New("the context did not end")
		}
	})
	ts := startServer(t, Config{}, h, nil)
	rc := dialRaw(t, ts.addr)
	rc.get(1, "/")
	<-started
	if err := rc.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Error(err)
	}
}

// TestBufferedPreface serves h2c on connections whose first bytes a
// listener had already read, as wire/http1 does when it sniffs the
// preface.
func TestBufferedPreface(t *testing.T) {
	for _, n := range []int{1, len(http2.ClientPreface), len(http2.ClientPreface) + 5} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := New(&okHandler{}, Config{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, n)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, buf); err != nil {
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
			_ = s.ServeConn(c, buf)
		}()
		ts := &testServer{Server: s, addr: ln.Addr().String()}
		c := ts.client()
		if got := mustGet(t, c, ts.url("/")); got != "ok" {
			t.Errorf("%d bytes buffered: got %q; want ok", n, got)
		}
		c.CloseIdleConnections()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
		<-done
	}
}

// TestBadPreface checks a connection that does not start with the
// preface is closed without a stream.
func TestBadPreface(t *testing.T) {
	h := &okHandler{}
	ts := startServer(t, Config{}, h, nil)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if bytes.Contains(b, []byte("ok")) || h.n() != 0 {
		t.Errorf("got %q and %d handler calls; want the connection closed unserved", b, h.n())
	}
}

// TestDuplicateSettings checks a SETTINGS frame that names a setting
// twice is taken in order (RFC 9113 section 6.5.3), where x/net alone
// would hang up: the last value holds and the connection serves.
func TestDuplicateSettings(t *testing.T) {
	ts := startServer(t, Config{}, &okHandler{}, nil)
	rc := dialRaw(t, ts.addr)
	err := rc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
		http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 15},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: 3},
	)
	if err != nil {
		t.Fatal(err)
	}
	rc.get(1, "/")
	acked := false
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("got %v; want a SETTINGS ack and the answer", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			acked = acked || f.IsAck()
		case *http2.GoAwayFrame:
			t.Fatalf("got GOAWAY %v; want the frame accepted", f.ErrCode)
		case *http2.DataFrame:
			// With the first value (1) the body would come a byte at
			// a time; with the last (3) it comes whole.
			if string(f.Data()) != "ok" || !f.StreamEnded() || !acked {
				t.Errorf("got DATA %q end %v after ack %v; want \"ok\" ending the stream, after the ack", f.Data(), f.StreamEnded(), acked)
			}
			return
		}
	}
}

// TestRequestBodyRewrapped checks that a pipeline that replaces the
// request body stream with a reader around it (as the proxy's body
// counter and the WAF's replay do) can still read it: fasthttp closes the
// stream it replaces, so the wire's body must not be an io.Closer.
func TestRequestBodyRewrapped(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no body timeout", Config{}},
		{"with a body timeout", Config{BodyTimeout: 5 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, _ wire.Stream) {
				req := &ctx.Request
				if _, ok := req.BodyStream().(io.Closer); ok {
					t.Error("the request body stream is an io.Closer")
				}
				req.SetBodyStream(io.LimitReader(req.BodyStream(), 1<<20), req.Header.ContentLength())
				b, err := io.ReadAll(req.BodyStream())
				if err != nil {
					ctx.SetStatusCode(500)
					ctx.SetBodyString(err.Error())
					return
				}
				ctx.SetBody(b)
			})
			ts := startServer(t, tc.cfg, h, nil)
			resp, err := ts.client().Post(ts.url("/"), "text/plain", strings.NewReader("a body"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "a body" {
				t.Errorf("got %d %q; want 200 %q", resp.StatusCode, b, "a body")
			}
		})
	}
}
