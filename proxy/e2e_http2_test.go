package proxy

// End-to-end tests of HTTP/2 to clients: Rampart's listeners hand h2 (TLS,
// by ALPN) and h2c (prior knowledge) connections to wire/http2, whose
// streams run through the whole pipeline to HTTP/1.1 upstreams. The client
// is x/net's HTTP/2 transport over real loopback sockets.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/internal/testcert"
)

// h2Env is a proxy with a TLS listener "web" (default protocols: h2 and
// http1 by ALPN) and a plain listener "plain" that serves h2c and http1,
// and the clients to reach them.
type h2Env struct {
	p       *testProxy
	ca      *testcert.CA
	roots   *x509.CertPool
	dir     string
	tlsAddr string // listener "web"
	h2cAddr string // listener "plain"
}

// h2Certificate writes a certificate for example.com, its subdomains and
// 127.0.0.1 into dir, and returns its CA and the tls block that serves it.
func h2Certificate(t *testing.T, dir string) (*testcert.CA, string) {
	t.Helper()
	ca := testcert.NewCA(t, "HTTP/2 CA")
	cf, kf := ca.Issue(t, "h2", time.Time{}, false, "example.com", "*.example.com", "127.0.0.1").Write(t, dir, "h2")
	return ca, staticTLSYAML("", [2]string{cf, kf})
}

// h2YAML is a configuration with listeners "web" (TLS, tlsBlock and
// webExtra under it) and "plain" (protocols [h2c, http1], plainExtra under
// it), and rest (upstreams, routes and anything else) at the top level.
func h2YAML(tlsBlock, webExtra, plainExtra, rest string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
%s
%s
  plain:
    address: 127.0.0.1:0
    protocols: [h2c, http1]
%s
%s
`, indent(tlsBlock, 4), indent(webExtra, 4), indent(plainExtra, 4), rest)
}

// startH2Proxy starts a proxy from h2YAML(the certificate's block,
// webExtra, plainExtra, rest).
func startH2Proxy(t *testing.T, webExtra, plainExtra, rest string) *h2Env {
	t.Helper()
	dir := t.TempDir()
	ca, block := h2Certificate(t, dir)
	p := startProxy(t, h2YAML(block, webExtra, plainExtra, rest))
	return &h2Env{p: p, ca: ca, roots: testcert.Pool(ca.PEM), dir: dir, tlsAddr: p.addr, h2cAddr: p.srv.Addr("plain")}
}

// h2Client is one way to reach the proxy over HTTP/2.
type h2Client struct {
	name   string
	scheme string // of the URLs: https or http
	addr   string
	tr     *http2.Transport
}

// url is the URL of path on host through the client's listener; the
// connection goes to the listener whatever host says.
func (c *h2Client) url(host, path string) string {
	return c.scheme + "://" + host + path
}

// do sends req and reads the whole response; the body is in the returned
// string.
func (c *h2Client) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), e2eTimeout)
	defer cancel()
	resp, err := c.tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s: got %s; want HTTP/2.0", req.Method, req.URL, resp.Proto)
	}
	return resp, string(b)
}

// get sends a GET of path with Host host and extra header fields
// ("Name: value").
func (c *h2Client) get(t *testing.T, host, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	return c.send(t, http.MethodGet, host, path, "", headers...)
}

// send sends a request with a body (none when empty).
func (c *h2Client) send(t *testing.T, method, host, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.url(host, path), r)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(name, strings.TrimSpace(value))
	}
	return c.do(t, req)
}

// tlsTransport is x/net's HTTP/2 client over TLS (ALPN h2) to addr,
// whatever the URL's host, trusting roots; conf adjusts its TLS settings
// (nil: none).
func tlsTransport(addr string, roots *x509.CertPool, conf func(*tls.Config)) *http2.Transport {
	return &http2.Transport{
		DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
			c := cfg.Clone()
			c.RootCAs = roots
			if c.ServerName == "" || net.ParseIP(c.ServerName) != nil {
				c.ServerName = "example.com"
			}
			if conf != nil {
				conf(c)
			}
			d := tls.Dialer{NetDialer: &net.Dialer{Timeout: e2eTimeout}, Config: c}
			return d.DialContext(ctx, network, addr)
		},
	}
}

// h2cTransport is x/net's HTTP/2 client in cleartext with prior knowledge
// to addr, whatever the URL's host.
func h2cTransport(addr string) *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

// clients returns an HTTP/2 client of each listener: TLS (h2 by ALPN) and
// h2c. Their connections are closed when the test ends.
func (e *h2Env) clients(t *testing.T) []*h2Client {
	cs := []*h2Client{
		{name: "h2", scheme: "https", addr: e.tlsAddr, tr: tlsTransport(e.tlsAddr, e.roots, nil)},
		{name: "h2c", scheme: "http", addr: e.h2cAddr, tr: h2cTransport(e.h2cAddr)},
	}
	for _, c := range cs {
		t.Cleanup(c.tr.CloseIdleConnections)
	}
	return cs
}

// echoUpstream answers every request with 200 and a body naming what
// reached it: "METHOD URI PROTO body=BODY".
func echoUpstream(t *testing.T) *httpUpstream {
	return startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Upstream-Proto", r.Proto)
		w.Header().Set("X-Got-Forwarded-Proto", r.Header.Get("X-Forwarded-Proto"))
		fmt.Fprintf(w, "%s %s %s body=%s", r.Method, r.RequestURI, r.Proto, b)
	}))
}

// oneRoute is an upstream "app" with target addr and a catch-all route to
// it, with the access log off.
func oneRoute(addr string) string {
	return fmt.Sprintf(`
upstreams:
  app:
    targets:
      - url: http://%s
routes:
  - name: all
    upstream: app
access_log: {path: "off"}
`, addr)
}

// TestE2EHTTP2Smoke: a GET and a POST over TLS (ALPN h2) and h2c (prior
// knowledge) reach an HTTP/1.1 upstream as HTTP/1.1 and come back; an
// HTTP/1.1 client on either listener is still served.
func TestE2EHTTP2Smoke(t *testing.T) {
	up := echoUpstream(t)
	e := startH2Proxy(t, "", "", oneRoute(up.addr()))
	for _, c := range e.clients(t) {
		t.Run(c.name, func(t *testing.T) {
			resp, body := c.get(t, "example.com", "/hello?x=1")
			if resp.StatusCode != 200 || body != "GET /hello?x=1 HTTP/1.1 body=" {
				t.Errorf("GET: got %d %q; want 200 %q", resp.StatusCode, body, "GET /hello?x=1 HTTP/1.1 body=")
			}
			wantProto := map[string]string{"h2": "https", "h2c": "http"}[c.name]
			if got := resp.Header.Get("X-Got-Forwarded-Proto"); got != wantProto {
				t.Errorf("upstream got X-Forwarded-Proto %q; want %q", got, wantProto)
			}
			resp, body = c.send(t, http.MethodPost, "example.com", "/post", "a=b&c=d")
			if resp.StatusCode != 200 || body != "POST /post HTTP/1.1 body=a=b&c=d" {
				t.Errorf("POST: got %d %q; want 200 %q", resp.StatusCode, body, "POST /post HTTP/1.1 body=a=b&c=d")
			}
		})
	}
	t.Run("http/1.1 over TLS", func(t *testing.T) {
		resp, cs, err := tlsGet(e.tlsAddr, &tls.Config{ServerName: "example.com", RootCAs: e.roots, NextProtos: []string{"http/1.1"}}, "example.com", "/one")
		if err != nil {
			t.Fatal(err)
		}
		if cs.NegotiatedProtocol != "http/1.1" || resp.status() != 200 {
			t.Errorf("got ALPN %q, status %d; want http/1.1, 200", cs.NegotiatedProtocol, resp.status())
		}
	})
	t.Run("http/1.1 in cleartext", func(t *testing.T) {
		if resp := rawGet(t, e.h2cAddr, "example.com", "/one"); resp.status() != 200 {
			t.Errorf("got %d; want 200", resp.status())
		}
	})
}

// TestE2EHTTP2Protocols: listeners.NAME.protocols chooses what ALPN offers
// and what a plain listener detects; a protocol left out is refused.
func TestE2EHTTP2Protocols(t *testing.T) {
	up := echoUpstream(t)
	dir := t.TempDir()
	ca, block := h2Certificate(t, dir)
	roots := testcert.Pool(ca.PEM)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [http1]
%s
  h2only:
    address: 127.0.0.1:0
    protocols: [h2]
%s
  plain:
    address: 127.0.0.1:0
  h2conly:
    address: 127.0.0.1:0
    protocols: [h2c]
%s`, indent(block, 4), indent(block, 4), oneRoute(up.addr())))
	alpn := func(t *testing.T, addr string, offer ...string) string {
		t.Helper()
		c, err := tlsDial(addr, &tls.Config{ServerName: "example.com", RootCAs: roots, NextProtos: offer})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().NegotiatedProtocol
	}
	t.Run("http1 only: ALPN never chooses h2", func(t *testing.T) {
		if got := alpn(t, p.addr, "h2", "http/1.1"); got != "http/1.1" {
			t.Errorf("got ALPN %q; want http/1.1", got)
		}
	})
	t.Run("h2 only: ALPN chooses h2", func(t *testing.T) {
		if got := alpn(t, p.srv.Addr("h2only"), "http/1.1", "h2"); got != "h2" {
			t.Errorf("got ALPN %q; want h2", got)
		}
		c := &h2Client{scheme: "https", tr: tlsTransport(p.srv.Addr("h2only"), roots, nil)}
		defer c.tr.CloseIdleConnections()
		if resp, _ := c.get(t, "example.com", "/"); resp.StatusCode != 200 {
			t.Errorf("got %d; want 200", resp.StatusCode)
		}
	})
	t.Run("h2 only: HTTP/1.1 without ALPN is refused", func(t *testing.T) {
		resp, _, err := tlsGet(p.srv.Addr("h2only"), &tls.Config{ServerName: "example.com", RootCAs: roots}, "example.com", "/")
		if err != nil {
			t.Fatal(err)
		}
		if resp.status() != 505 {
			t.Errorf("got %d; want 505", resp.status())
		}
		if up.conns.Load() != 1 {
			t.Errorf("upstream got %d connections; want 1 (the h2 request's)", up.conns.Load())
		}
	})
	t.Run("plain without h2c: the preface is not HTTP/2", func(t *testing.T) {
		c := &h2Client{scheme: "http", tr: h2cTransport(p.srv.Addr("plain"))}
		defer c.tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "http://example.com/", nil)
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		if resp, err := c.tr.RoundTrip(req.WithContext(ctx)); err == nil {
			resp.Body.Close()
			t.Errorf("got %s %d over h2c; want a failure", resp.Proto, resp.StatusCode)
		}
		if resp := rawGet(t, p.srv.Addr("plain"), "example.com", "/"); resp.status() != 200 {
			t.Errorf("HTTP/1.1: got %d; want 200", resp.status())
		}
	})
	t.Run("h2c only", func(t *testing.T) {
		c := &h2Client{scheme: "http", tr: h2cTransport(p.srv.Addr("h2conly"))}
		defer c.tr.CloseIdleConnections()
		if resp, _ := c.get(t, "example.com", "/"); resp.StatusCode != 200 {
			t.Errorf("h2c: got %d; want 200", resp.StatusCode)
		}
		if resp := rawGet(t, p.srv.Addr("h2conly"), "example.com", "/"); resp.status() != 505 {
			t.Errorf("HTTP/1.1: got %d; want 505", resp.status())
		}
	})
}
