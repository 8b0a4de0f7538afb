package http2

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	xhttp2 "golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rampart-proxy/rampart/internal/testnet"
	"github.com/rampart-proxy/rampart/wire"
)

// The client against plain (non-gRPC) HTTP/2: net/http's server speaking
// h2c with prior knowledge on 127.0.0.1.

// startH2C serves h with net/http over h2c; maxStreams (0: net/http's
// default) is its SETTINGS_MAX_CONCURRENT_STREAMS. It returns the target.
func startH2C(t testing.TB, h http.Handler, maxStreams int) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, HTTP2: &http.HTTP2Config{MaxConcurrentStreams: maxStreams}}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

func getRequest(path string) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod(fasthttp.MethodGet)
	req.Header.SetRequestURI(path)
	req.Header.SetHost("backend.test")
	return req
}

// TestClientHeaderHygiene: fields of an HTTP/1.1 connection never reach
// the target; te goes only as "trailers"; the rest goes as sent.
func TestClientHeaderHygiene(t *testing.T) {
	type seen struct {
		Proto  string
		Host   string
		Path   string
		Header http.Header
		Body   string
	}
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.NewEncoder(w).Encode(seen{r.Proto, r.Host, r.URL.RequestURI(), r.Header, string(b)})
	}), 0)
	c := newTestClient(t, target, ClientOptions{})
	req := getRequest("/a%2Fb/../c?q=1&q=2")
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("TE", "trailers, deflate;q=0.5")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.Header.SetContentLength(5)
	var resp fasthttp.Response
	rb, err := c.RoundTrip(testContext(t), req, bytes.NewReader([]byte("hello")), &resp)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer rb.Close()
	var got seen
	if err := json.NewDecoder(rb).Decode(&got); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"proto", got.Proto, "HTTP/2.0"},
		{"host", got.Host, "backend.test"},
		{"path", got.Path, "/a%2Fb/../c?q=1&q=2"},
		{"body", got.Body, "hello"},
		{"te", got.Header.Get("Te"), "trailers"},
		{"x-forwarded-for", got.Header.Get("X-Forwarded-For"), "192.0.2.1"},
		{"content-length", got.Header.Get("Content-Length"), "5"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q; want %q", c.name, c.got, c.want)
		}
	}
	if got := got.Header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Errorf("X-Multi: got %q; want [a b]", got)
	}
	for _, name := range []string{"Connection", "X-Hop", "Keep-Alive", "Proxy-Connection", "Upgrade", "Transfer-Encoding"} {
		if v, ok := got.Header[name]; ok {
			t.Errorf("%s: got %q; want it not sent", name, v)
		}
	}
}

// TestClientStreamsResponse: the answer's first part arrives before the
// target writes its second (no buffering), and trailers follow the body.
func TestClientStreamsResponse(t *testing.T) {
	next := make(chan struct{})
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
		w.Header().Set("X-Checksum", "abc")
	}), 0)
	c := newTestClient(t, target, ClientOptions{Read: testTimeout})
	var resp fasthttp.Response
	rb, err := c.RoundTrip(testContext(t), getRequest("/events"), nil, &resp)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer rb.Close()
	if got := rb.(wire.Flusher).FlushEach(); !got {
		t.Errorf("FlushEach: got false; want true for text/event-stream")
	}
	if got := resp.Header.ContentLength(); got != -1 {
		t.Errorf("content length: got %d; want -1 (unknown)", got)
	}
	first := make([]byte, len("data: one\n\n"))
	if _, err := io.ReadFull(rb, first); err != nil || string(first) != "data: one\n\n" {
		t.Fatalf("first event: got %q, %v; want %q", first, err, "data: one\n\n")
	}
	close(next)
	rest, err := io.ReadAll(rb)
	if err != nil || string(rest) != "data: two\n\n" {
		t.Fatalf("second event: got %q, %v; want %q", rest, err, "data: two\n\n")
	}
	tr := rb.(wire.TrailerSource).Trailers()
	if len(tr) != 1 || string(tr[0].Name) != "x-checksum" || string(tr[0].Value) != "abc" {
		t.Errorf("trailers: got %q; want [x-checksum: abc]", tr)
	}
}

func TestClientResponseHeader(t *testing.T) {
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		w.Header()["Content-Type"] = nil // no sniffing: send none
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "hello")
	}), 0)
	c := newTestClient(t, target, ClientOptions{})
	var resp fasthttp.Response
	rb, err := c.RoundTrip(testContext(t), getRequest("/"), nil, &resp)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer rb.Close()
	body, err := io.ReadAll(rb)
	checks := []struct{ name, got, want string }{
		{"body", string(body), "hello"},
		{"x-upstream", string(resp.Header.Peek("X-Upstream")), "yes"},
		{"content-type (none sent, none invented)", string(resp.Header.ContentType()), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q; want %q", c.name, c.got, c.want)
		}
	}
	if err != nil {
		t.Errorf("reading the body: %v", err)
	}
	if got := resp.StatusCode(); got != http.StatusCreated {
		t.Errorf("status: got %d; want 201", got)
	}
	if got := resp.Header.ContentLength(); got != 5 {
		t.Errorf("content length: got %d; want 5", got)
	}
	var cookies []string
	for _, v := range resp.Header.Cookies() {
		cookies = append(cookies, string(v))
	}
	if len(cookies) != 2 {
		t.Errorf("set-cookie: got %q; want two", cookies)
	}
	if rb.(wire.Flusher).FlushEach() {
		t.Errorf("FlushEach: got true; want false for a body of known length")
	}
}

// TestClientTimeouts: a target silent for the read timeout, before its
// header or within its body, is timed out; a gRPC call's grpc-timeout
// bounds the exchange even when the read timeout would not; a gRPC body
// cut by a timeout ends with DEADLINE_EXCEEDED trailers.
func TestClientTimeouts(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
		}
		select { // silent until the test ends or the proxy gives up
		case <-release:
		case <-r.Context().Done():
		}
	}), 0)
	tests := []struct {
		name        string
		path        string
		read        time.Duration
		grpcTimeout string
		grpc        bool
		wantHeader  bool   // RoundTrip succeeds; the body read times out
		wantStatus  string // a gRPC body's synthesized grpc-status
	}{
		{"read timeout before the header", "/", 200 * time.Millisecond, "", false, false, ""},
		{"read timeout in the body", "/body", 200 * time.Millisecond, "", false, true, ""},
		{"grpc-timeout before the header", "/", 0, "150m", true, false, ""},
		{"grpc-timeout in the body", "/body", 0, "150m", true, true, "4"},
		{"read timeout in a grpc body", "/body", 200 * time.Millisecond, "", true, true, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, target, ClientOptions{Read: tt.read})
			req := getRequest(tt.path)
			if tt.grpc {
				req.Header.SetMethod(fasthttp.MethodPost)
				req.Header.SetContentType("application/grpc")
			}
			if tt.grpcTimeout != "" {
				req.Header.Set(HeaderTimeout, tt.grpcTimeout)
			}
			var resp fasthttp.Response
			var body io.Reader
			if tt.grpc {
				body = bytes.NewReader([]byte{0, 0, 0, 0, 0})
			}
			rb, err := c.RoundTrip(testContext(t), req, body, &resp)
			if !tt.wantHeader {
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("RoundTrip: got %v; want ErrTimeout", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			got, err := io.ReadAll(rb)
			if string(got) != "part" {
				t.Errorf("body: got %q; want %q", got, "part")
			}
			if tt.wantStatus == "" {
				if !errors.Is(err, ErrTimeout) {
					t.Errorf("reading the body: got %v; want ErrTimeout", err)
				}
				return
			}
			if err != nil {
				t.Errorf("reading the body: got %v; want io.EOF and trailers", err)
			}
			if st, msg := grpcStatus(&resp, rb); st != tt.wantStatus || msg == "" {
				t.Errorf("trailers: got grpc-status %q, grpc-message %q; want %s and a message", st, msg, tt.wantStatus)
			}
		})
	}
}

// TestClientConnections: requests reuse a connection; when the target's
// stream limit is reached, another connection is opened rather than wait.
func TestClientConnections(t *testing.T) {
	var mu sync.Mutex
	peers := map[string]int{}
	hold := make(chan struct{})
	arrived := make(chan struct{}, 8)
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr]++
		mu.Unlock()
		if r.URL.Path == "/hold" {
			arrived <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
	}), 2)
	c := newTestClient(t, target, ClientOptions{})
	for range 3 {
		var resp fasthttp.Response
		rb, err := c.RoundTrip(testContext(t), getRequest("/"), nil, &resp)
		if err != nil {
			t.Fatalf("RoundTrip: %v", err)
		}
		_, _ = io.Copy(io.Discard, rb)
		_ = rb.Close()
	}
	mu.Lock()
	if len(peers) != 1 {
		t.Errorf("sequential requests: got %d connections; want 1", len(peers))
	}
	clear(peers)
	mu.Unlock()

	const held = 4 // twice the target's limit of 2 streams per connection
	errs := make(chan error, held)
	for range held {
		go func() {
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), getRequest("/hold"), nil, &resp)
			if err == nil {
				_, err = io.Copy(io.Discard, rb)
				_ = rb.Close()
			}
			errs <- err
		}()
	}
	for i := range held {
		select {
		case <-arrived:
		case <-time.After(testTimeout):
			t.Fatalf("only %d of %d held requests reached the target", i, held)
		}
	}
	close(hold)
	for range held {
		if err := <-errs; err != nil {
			t.Errorf("held request: %v", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(peers) < 2 {
		t.Errorf("%d concurrent requests over a 2-stream limit: got %d connection(s); want at least 2", held, len(peers))
	}
}

// TestClientTargetFailures: a target that resets the stream, or sends a
// header block HTTP/2 forbids, is told apart from a timeout and a connect
// failure.
func TestClientTargetFailures(t *testing.T) {
	resetting := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // net/http resets the stream
	}), 0)
	tests := []struct {
		name       string
		target     string
		wantHeader bool // the failure comes while reading the body
		want       error
	}{
		{"reset in the body", resetting, true, ErrReset},
		{"uppercase header name", startRawH2(t, "X-Upper"), false, ErrBadResponse},
		{"connection field in the response, dropped", startRawH2(t, "connection"), true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.target, ClientOptions{})
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), getRequest("/"), nil, &resp)
			if tt.wantHeader {
				if err != nil {
					t.Fatalf("RoundTrip: %v", err)
				}
				defer rb.Close()
				_, err = io.ReadAll(rb)
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v; want no error", err)
				}
				if v := resp.Header.Peek("Connection"); len(v) > 0 {
					t.Errorf("Connection: got %q; want it not relayed", v)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v; want %v", err, tt.want)
			}
		})
	}
}

// startRawH2 serves h2c by hand: to every request it answers a header
// block holding the field name (with the value "1") after :status 200,
// whatever HTTP/2 says of it. It returns the target.
func startRawH2(t *testing.T, name string) string {
	t.Helper()
	s := testnet.Listen(t, func(conn net.Conn) { serveRawH2(conn, name) })
	return "http://" + s.Addr()
}

func serveRawH2(conn net.Conn, name string) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	preface := make([]byte, len(xhttp2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil {
		return
	}
	fr := xhttp2.NewFramer(conn, conn)
	if fr.WriteSettings() != nil {
		return
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for range 100 { // bounded: a test client sends a handful of frames
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *xhttp2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *xhttp2.HeadersFrame:
			block.Reset()
			_ = enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			_ = enc.WriteField(hpack.HeaderField{Name: name, Value: "1"})
			_ = fr.WriteHeaders(xhttp2.HeadersFrameParam{
				StreamID: f.StreamID, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true,
			})
		}
	}
}

// TestClientRefusedStream: a stream the target refuses (REFUSED_STREAM,
// as a restarting server does) is sent again when its body is held whole;
// a streamed body cannot be sent twice, and the failure is a reset.
func TestClientRefusedStream(t *testing.T) {
	tests := []struct {
		name string
		body func() io.Reader
		want error
	}{
		{"whole body sent again", func() io.Reader { return bytes.NewReader([]byte("hello")) }, nil},
		{"streamed body", func() io.Reader { return io.LimitReader(bytes.NewReader([]byte("hello")), 5) }, ErrReset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, refused := startRefusingH2(t)
			c := newTestClient(t, target, ClientOptions{})
			req := getRequest("/")
			req.Header.SetMethod(fasthttp.MethodPost)
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), req, tt.body(), &resp)
			if got := refused.Load(); got != 1 {
				t.Errorf("streams refused: got %d; want 1", got)
			}
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v; want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			if got, err := io.ReadAll(rb); string(got) != "hello" || err != nil {
				t.Errorf("echo: got %q, %v; want %q", got, err, "hello")
			}
		})
	}
}

// startRefusingH2 serves h2c by hand: it refuses the first stream with
// REFUSED_STREAM and echoes the body of every other. It returns the target
// and the count of refusals.
func startRefusingH2(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	refused := new(atomic.Int32)
	s := testnet.Listen(t, func(conn net.Conn) { serveRefusingH2(conn, refused) })
	return "http://" + s.Addr(), refused
}

func serveRefusingH2(conn net.Conn, refused *atomic.Int32) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(testTimeout))
	preface := make([]byte, len(xhttp2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil {
		return
	}
	fr := xhttp2.NewFramer(conn, conn)
	if fr.WriteSettings() != nil {
		return
	}
	bodies := map[uint32][]byte{}
	answer := func(id uint32) {
		var block bytes.Buffer
		_ = hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		_ = fr.WriteHeaders(xhttp2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true})
		_ = fr.WriteData(id, true, bodies[id])
		delete(bodies, id)
	}
	for range 100 { // bounded: a test client sends a handful of frames
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *xhttp2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *xhttp2.HeadersFrame:
			if refused.CompareAndSwap(0, 1) {
				_ = fr.WriteRSTStream(f.StreamID, xhttp2.ErrCodeRefusedStream)
				continue
			}
			bodies[f.StreamID] = []byte{}
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		case *xhttp2.DataFrame:
			if _, ok := bodies[f.StreamID]; !ok {
				continue // the refused stream's body
			}
			bodies[f.StreamID] = append(bodies[f.StreamID], f.Data()...)
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		}
	}
}

// TestClientGRPCAddsTE: a gRPC request goes with te: trailers even when
// the wire did not pass it on; other requests go without one.
func TestClientGRPCAddsTE(t *testing.T) {
	target := startH2C(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got-TE", r.Header.Get("Te"))
	}), 0)
	c := newTestClient(t, target, ClientOptions{})
	tests := []struct{ name, contentType, want string }{
		{"grpc", "application/grpc+proto", "trailers"},
		{"not grpc", "application/json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := getRequest("/")
			req.Header.SetMethod(fasthttp.MethodPost)
			req.Header.SetContentType(tt.contentType)
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), req, bytes.NewReader([]byte("x")), &resp)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			_ = rb.Close()
			if got := string(resp.Header.Peek("X-Got-TE")); got != tt.want {
				t.Errorf("te at the target: got %q; want %q", got, tt.want)
			}
		})
	}
}
