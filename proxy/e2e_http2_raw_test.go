package proxy

// HTTP/2 frame by frame against Rampart's listeners, to send what a real
// client would not: a WebSocket upgrade, extended CONNECT, and the
// denial-of-service attacks wire/http2 defends against (its own tests
// have the full set; these check the defences hold through a listener).

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Raw speaks HTTP/2 frame by frame on one connection.
type h2Raw struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
	// settings are the server's first SETTINGS.
	settings map[http2.SettingID]uint32
	lastID   uint32 // the last stream id nextID gave out (starts at 1)
	// noAck keeps outcome from answering PINGs: another goroutine is
	// writing (a Framer's writes are not safe for concurrent use).
	noAck bool
}

// dialH2Raw connects to addr (TLS with ALPN h2 when tlsConf is not nil,
// else h2c) and exchanges the prefaces and SETTINGS.
func dialH2Raw(t *testing.T, addr string, tlsConf *tls.Config) *h2Raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, e2eTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		conf := tlsConf.Clone()
		conf.NextProtos = []string{"h2"}
		tc := tls.Client(c, conf)
		_ = tc.SetDeadline(time.Now().Add(e2eTimeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			t.Fatalf("handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			tc.Close()
			t.Fatalf("got ALPN %q; want h2", p)
		}
		c = tc
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	r := &h2Raw{t: t, c: c, fr: http2.NewFramer(c, c), settings: map[http2.SettingID]uint32{}, lastID: ^uint32(0)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 1 << 20
	r.enc = hpack.NewEncoder(&r.buf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = sf.ForeachSetting(func(s http2.Setting) error {
				r.settings[s.ID] = s.Val
				return nil
			})
			if err := r.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
}

// block encodes fields as a header block, without any check.
func (r *h2Raw) block(fields [][2]string) []byte {
	r.buf.Reset()
	for _, f := range fields {
		_ = r.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return bytes.Clone(r.buf.Bytes())
}

// headers sends one HEADERS frame with the whole block.
func (r *h2Raw) headers(id uint32, endStream bool, fields [][2]string) error {
	return r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(fields), EndStream: endStream, EndHeaders: true})
}

// get sends a well-formed GET of path on stream id.
func (r *h2Raw) get(id uint32, scheme, path string) error {
	return r.headers(id, true, [][2]string{{":method", "GET"}, {":scheme", scheme}, {":authority", "example.com"}, {":path", path}})
}

// outcome reads frames until stream id is answered or reset, or the
// connection goes away, and says which: "status 200", "reset
// PROTOCOL_ERROR", "goaway ENHANCE_YOUR_CALM", "closed".
func (r *h2Raw) outcome(id uint32) string {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			return "closed"
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				return "status " + f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		case *http2.PingFrame:
			if !f.IsAck() && !r.noAck {
				_ = r.fr.WritePing(true, f.Data)
			}
		}
	}
}

// servedAfter checks that a well-behaved client on a new connection is
// served through the listener.
func servedAfter(t *testing.T, c *h2Client) {
	t.Helper()
	c.tr.CloseIdleConnections()
	if resp, body := c.get(t, "example.com", "/after"); resp.StatusCode != http.StatusOK {
		t.Errorf("a well-behaved client after the attack: got %d %q; want 200", resp.StatusCode, body)
	}
}

// TestE2EHTTP2WebSocket: WebSocket over HTTP/2 is not offered. The server
// does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL (so browsers open
// their WebSockets over HTTP/1.1); an HTTP/1.1-style upgrade and an
// extended CONNECT sent over HTTP/2 anyway get a clear answer at once,
// and never reach the upstream.
func TestE2EHTTP2WebSocket(t *testing.T) {
	up := echoUpstream(t)
	e := startH2Proxy(t, "", "", oneRoute(up.addr()))
	tlsConf := &tls.Config{ServerName: "example.com", RootCAs: e.roots}
	for _, kind := range []struct {
		name, addr, scheme string
		tls                *tls.Config
	}{
		{"h2", e.tlsAddr, "https", tlsConf},
		{"h2c", e.h2cAddr, "http", nil},
	} {
		t.Run(kind.name, func(t *testing.T) {
			r := dialH2Raw(t, kind.addr, kind.tls)
			if v, ok := r.settings[http2.SettingEnableConnectProtocol]; ok && v != 0 {
				t.Errorf("the server announces SETTINGS_ENABLE_CONNECT_PROTOCOL=%d; want it absent", v)
			}
			before := up.conns.Load()
			for _, tt := range []struct {
				name   string
				fields [][2]string
				want   string
			}{
				{"upgrade and connection fields", [][2]string{{":method", "GET"}, {":scheme", kind.scheme}, {":authority", "example.com"}, {":path", "/ws"},
					{"connection", "Upgrade"}, {"upgrade", "websocket"}, {"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"sec-websocket-version", "13"}}, "status 400"},
				{"upgrade field alone", [][2]string{{":method", "GET"}, {":scheme", kind.scheme}, {":authority", "example.com"}, {":path", "/ws"},
					{"upgrade", "websocket"}, {"sec-websocket-version", "13"}}, "status 400"},
				{"extended CONNECT (RFC 8441)", [][2]string{{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", kind.scheme}, {":authority", "example.com"}, {":path", "/ws"},
					{"sec-websocket-version", "13"}}, "reset PROTOCOL_ERROR"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					id := r.nextID()
					if err := r.headers(id, false, tt.fields); err != nil {
						t.Fatal(err)
					}
					if got := r.outcome(id); got != tt.want {
						t.Errorf("got %q; want %q", got, tt.want)
					}
				})
			}
			if got := up.conns.Load(); got != before {
				t.Errorf("the upstream got %d new connections; want none", got-before)
			}
			// The connection goes on serving.
			id := r.nextID()
			if err := r.get(id, kind.scheme, "/plain"); err != nil {
				t.Fatal(err)
			}
			if got := r.outcome(id); got != "status 200" {
				t.Errorf("a GET after them: got %q; want status 200", got)
			}
		})
	}
}

// nextID returns the next client stream id of the connection.
func (r *h2Raw) nextID() uint32 {
	r.lastID += 2
	return r.lastID
}

// TestE2EHTTP2Attacks performs denial-of-service attacks against a TLS
// listener with its default http2 limits: the attacker's connection is
// cut with GOAWAY ENHANCE_YOUR_CALM, and a well-behaved client is then
// served.
func TestE2EHTTP2Attacks(t *testing.T) {
	up := echoUpstream(t)
	e := startH2Proxy(t, "", "", oneRoute(up.addr()))
	tlsConf := &tls.Config{ServerName: "example.com", RootCAs: e.roots}
	tests := []struct {
		name   string
		attack func(r *h2Raw)
	}{
		{
			// CVE-2023-44487: open streams and reset them at once,
			// far past max_resets_per_second (100, burst 200).
			name: "rapid reset",
			attack: func(r *h2Raw) {
				for range 2000 {
					id := r.nextID()
					if r.get(id, "https", "/") != nil || r.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
						return // cut
					}
				}
			},
		},
		{
			// CVE-2024-27316 class: a header block that never ends, in
			// empty CONTINUATION frames.
			name: "CONTINUATION flood",
			attack: func(r *h2Raw) {
				id := r.nextID()
				if r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block([][2]string{{":method", "GET"}}), EndHeaders: false}) != nil {
					return
				}
				for range 10000 {
					if r.fr.WriteContinuation(id, false, nil) != nil {
						return
					}
				}
			},
		},
		{
			// CVE-2019-9512: PINGs past max_control_frames_per_second
			// (1000, burst 2000).
			name: "PING flood",
			attack: func(r *h2Raw) {
				for i := range 10000 {
					if r.fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)}) != nil {
						return
					}
				}
			},
		},
	}
	good := e.clients(t)[0]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialH2Raw(t, e.tlsAddr, tlsConf)
			r.noAck = true
			done := make(chan struct{})
			go func() {
				defer close(done)
				tt.attack(r)
			}()
			if got := r.outcome(0); got != "goaway ENHANCE_YOUR_CALM" {
				t.Errorf("the attacker got %q; want goaway ENHANCE_YOUR_CALM", got)
			}
			_ = r.c.Close()
			select {
			case <-done:
			case <-time.After(e2eTimeout):
				t.Fatal("the attack's writes never ended")
			}
			servedAfter(t, good)
		})
	}
}
