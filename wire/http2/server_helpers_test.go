package http2

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rampart-proxy/rampart/wire"
)

// testServer is a Server behind a real loopback listener.
type testServer struct {
	*Server
	addr string
	tls  *tls.Config // nil for h2c
}

// startServer serves h on 127.0.0.1: h2c with prior knowledge when
// serverTLS is nil, TLS with ALPN h2 otherwise.
func startServer(t testing.TB, cfg Config, h wire.Handler, serverTLS *tls.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(h, cfg)
	ts := &testServer{Server: s, addr: ln.Addr().String(), tls: serverTLS}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if serverTLS == nil {
					_ = s.ServeConn(c, nil)
					return
				}
				tc := tls.Server(c, serverTLS)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					_ = c.Close()
					return
				}
				_ = tc.SetDeadline(time.Time{})
				_ = s.ServeConn(tc, nil)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		wg.Wait()
	})
	return ts
}

// client returns a real x/net HTTP/2 client for ts.
func (ts *testServer) client() *http.Client {
	tr := &http2.Transport{}
	if ts.tls == nil {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	} else {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (ts *testServer) url(path string) string {
	if ts.tls == nil {
		return "http://" + ts.addr + path
	}
	return "https://" + ts.addr + path
}

// rawClient speaks HTTP/2 frame by frame, to send what a real client
// would not.
type rawClient struct {
	t   *testing.T
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer
	// fields are the header fields of the last answer outcome saw.
	fields map[string]string
}

// dialRaw connects to an h2c server and exchanges the prefaces and
// SETTINGS.
func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return startRaw(t, c)
}

// dialRawTLS is dialRaw over TLS with ALPN h2.
func dialRawTLS(t *testing.T, addr string) *rawClient {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("got ALPN %q; want h2", p)
	}
	return startRaw(t, c)
}

// dial is dialRaw or dialRawTLS, as ts is served.
func (ts *testServer) dial(t *testing.T) *rawClient {
	if ts.tls == nil {
		return dialRaw(t, ts.addr)
	}
	return dialRawTLS(t, ts.addr)
}

func startRaw(t *testing.T, c net.Conn) *rawClient {
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	rc := &rawClient{t: t, c: c, fr: http2.NewFramer(c, c)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.fr.MaxHeaderListSize = 1 << 20
	rc.enc = hpack.NewEncoder(&rc.buf)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's SETTINGS: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			if err := rc.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return rc
		}
	}
}

// block encodes fields as a header block, without any check.
func (rc *rawClient) block(fields [][2]string) []byte {
	rc.buf.Reset()
	for _, f := range fields {
		_ = rc.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return bytes.Clone(rc.buf.Bytes())
}

func (rc *rawClient) headers(id uint32, endStream bool, fields [][2]string) {
	rc.t.Helper()
	err := rc.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: rc.block(fields), EndStream: endStream, EndHeaders: true,
	})
	if err != nil {
		rc.t.Fatal(err)
	}
}

// get sends a well-formed GET on stream id.
func (rc *rawClient) get(id uint32, path string) {
	rc.headers(id, true, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "example.com"}, {":path", path}})
}

// outcome reads frames until stream id is answered or reset, or the
// connection goes away, and says which: "status 200", "reset
// PROTOCOL_ERROR", "goaway ENHANCE_YOUR_CALM", "closed".
func (rc *rawClient) outcome(id uint32) string {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return "closed"
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == id {
				rc.fields = map[string]string{}
				for _, hf := range f.Fields {
					rc.fields[hf.Name] = hf.Value
				}
				return "status " + f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				return "reset " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return "goaway " + f.ErrCode.String()
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = rc.fr.WritePing(true, f.Data)
			}
		}
	}
}

// goAway reads frames until a GOAWAY and returns it, or nil if the
// connection ends first.
func (rc *rawClient) goAway() *http2.GoAwayFrame {
	rc.t.Helper()
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return nil
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g
		}
	}
}

// closed reports whether the server closes the connection within d,
// reading (and dropping) what it sends until then.
func (rc *rawClient) closed(d time.Duration) bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	var b [4096]byte
	for {
		_, err := rc.c.Read(b[:])
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// okHandler answers 200 "ok" and counts its calls.
type okHandler struct {
	mu    sync.Mutex
	calls int
}

func (h *okHandler) ServeWire(ctx *fasthttp.RequestCtx, s wire.Stream) {
	h.mu.Lock()
	h.calls++
	h.mu.Unlock()
	ctx.SetStatusCode(200)
	ctx.SetBodyString("ok")
}

func (h *okHandler) n() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

// mustGet fetches url with c and fails unless the answer is 200.
func mustGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: got status %d; want 200", url, resp.StatusCode)
	}
	return string(b)
}

// testCert makes a self-signed certificate for 127.0.0.1, usable as its
// own CA (client certificates).
func testCert(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"Rampart Test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

func serverTLSConfig(t *testing.T) *tls.Config {
	cert, _ := testCert(t, "server")
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12}
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
