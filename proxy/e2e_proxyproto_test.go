package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// proxyProtoConfig has the listeners of the PROXY protocol tests: "web"
// reads it from 127.0.0.1 (plain, h2c too), "secure" the same over TLS,
// "other" only from 192.0.2.0/24 (so not from this test), "plain" not at
// all. The route "/doc/" admits only 203.0.113.0/24.
func proxyProtoConfig(target, logPath, certFile, keyFile string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: "127.0.0.1:0"
    protocols: [http1, h2c]
    proxy_protocol: {trusted: [127.0.0.0/8]}
    limits: {read_header_timeout: 500ms}
  secure:
    address: "127.0.0.1:0"
    proxy_protocol: {trusted: [127.0.0.1]}
    tls:
      certificates: [{cert_file: %q, key_file: %q}]
  other:
    address: "127.0.0.1:0"
    proxy_protocol: {trusted: [192.0.2.0/24]}
  plain: {address: "127.0.0.1:0"}
upstreams:
  app: {targets: [{url: "http://%s"}]}
trusted_proxies: [10.0.0.0/8]
routes:
  - name: doc
    match: {path_prefix: /doc/}
    upstream: app
    allow: [203.0.113.0/24]
  - name: all
    upstream: app
access_log: {path: %q}
admin: {address: "127.0.0.1:0"}
`, certFile, keyFile, target, logPath)
}

// v2Header is a PROXY v2 header from go-proxyproto's writer.
func v2Header(t *testing.T, src, dst string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, tcpAddr(t, src), tcpAddr(t, dst))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tcpAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// v2Local is a PROXY v2 LOCAL header, as a balancer's health check sends.
var v2Local = append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x20, 0x00, 0x00, 0x00)

// TestE2EProxyProtocol: v1 and v2 headers from a trusted peer make the
// carried address the client for X-Forwarded-For, allow/deny,
// trusted_proxies and the access log; a LOCAL header keeps the peer; a
// connection without a valid header, or from an untrusted peer, is closed
// without an answer; a PROXY header on a listener without proxy_protocol
// is a bad request.
func TestE2EProxyProtocol(t *testing.T) {
	up := accessUpstream(t)
	dir := t.TempDir()
	ca := testcert.NewCA(t, "PROXY CA")
	certFile, keyFile := ca.Issue(t, "proxied", time.Time{}, false, "app.test").Write(t, dir, "leaf")
	logPath := filepath.Join(dir, "access.log")
	p := startProxy(t, proxyProtoConfig(up.addr(), logPath, certFile, keyFile))
	get := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: app.test\r\n\r\n" }

	cases := []struct {
		name     string
		header   []byte
		split    bool   // the header in a write of its own, the request later
		path     string // GET path
		xffIn    string // the client's X-Forwarded-For
		want     int    // 0: closed without an answer
		wantXFF  string // what the upstream sees
		wantLogs string // client_ip in the access log
	}{
		{"v1 TCP4", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n"), false, "/doc/a", "", 200, "203.0.113.7", "203.0.113.7"},
		{"v1 TCP4, request in a later write", []byte("PROXY TCP4 203.0.113.8 127.0.0.1 40000 443\r\n"), true, "/doc/a", "", 200, "203.0.113.8", "203.0.113.8"},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::7 ::1 40000 443\r\n"), false, "/a", "", 200, "2001:db8::7", "2001:db8::7"},
		{"v2 TCP4 (go-proxyproto's writer)", v2Header(t, "203.0.113.9:5000", "127.0.0.1:443"), false, "/doc/a", "", 200, "203.0.113.9", "203.0.113.9"},
		{"v2 TCP6", v2Header(t, "[2001:db8::9]:5000", "[::1]:443"), true, "/a", "", 200, "2001:db8::9", "2001:db8::9"},
		{"allow/deny sees the carried address", []byte("PROXY TCP4 198.51.100.1 127.0.0.1 40000 443\r\n"), false, "/doc/a", "", 403, "", "198.51.100.1"},
		{"the client's X-Forwarded-For starts at the carried address", []byte("PROXY TCP4 198.51.100.2 127.0.0.1 1 2\r\n"), false, "/a", "192.0.2.66", 200, "198.51.100.2", "198.51.100.2"},
		{"a carried address in trusted_proxies is a trusted proxy", []byte("PROXY TCP4 10.1.2.3 127.0.0.1 1 2\r\n"), false, "/doc/a", "203.0.113.50", 200, "203.0.113.50, 10.1.2.3", "203.0.113.50"},
		{"v1 UNKNOWN keeps the peer", []byte("PROXY UNKNOWN\r\n"), false, "/a", "", 200, "127.0.0.1", "127.0.0.1"},
		{"v2 LOCAL keeps the peer", v2Local, false, "/a", "", 200, "127.0.0.1", "127.0.0.1"},
		{"no header", nil, false, "/a", "", 0, "", ""},
		{"malformed v1", []byte("PROXY TCP4 203.0.113.7 nonsense\r\n"), false, "/a", "", 0, "", ""},
		{"v1 without CRLF", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 1 2\n"), false, "/a", "", 0, "", ""},
	}
	var wantLog []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.count()
			c := dialRaw(t, p.addr)
			req := get(tc.path)
			if tc.xffIn != "" {
				req = strings.Replace(req, "\r\n\r\n", "\r\nX-Forwarded-For: "+tc.xffIn+"\r\n\r\n", 1)
			}
			again := req
			if tc.split {
				if _, err := c.conn.Write(tc.header); err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			} else {
				req = string(tc.header) + req
			}
			if tc.want == 0 {
				_, _ = io.WriteString(c.conn, req)
				if !c.closedByPeer(e2eTimeout) {
					t.Fatal("the connection stayed open (or answered); want it closed without an answer")
				}
				if up.count() != before {
					t.Errorf("the upstream got a request; want none")
				}
				return
			}
			resp := c.roundTrip(req)
			if got := resp.status(); got != tc.want {
				t.Fatalf("status: got %d; want %d", got, tc.want)
			}
			wantLog = append(wantLog, tc.wantLogs)
			if tc.want != 200 {
				return
			}
			if got, _ := up.last().get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For upstream: got %q; want %q", got, tc.wantXFF)
			}
			// A second request on the connection: still the carried client.
			resp = c.roundTrip(again)
			if got := resp.status(); got != 200 {
				t.Fatalf("second request: got %d; want 200", got)
			}
			wantLog = append(wantLog, tc.wantLogs)
		})
	}

	t.Run("untrusted peer", func(t *testing.T) {
		c := dialRaw(t, p.srv.Addr("other"))
		_, _ = c.conn.Write(append([]byte("PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n"), get("/a")...))
		if !c.closedByPeer(e2eTimeout) {
			t.Fatal("the connection stayed open (or answered); want it closed at accept")
		}
	})
	t.Run("header on a listener without proxy_protocol", func(t *testing.T) {
		for _, h := range [][]byte{[]byte("PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n"), v2Header(t, "203.0.113.7:1", "127.0.0.1:2")} {
			c := dialRaw(t, p.srv.Addr("plain"))
			if _, err := c.conn.Write(append(h, get("/a")...)); err != nil {
				t.Fatal(err)
			}
			resp, err := readRawResponse(c.br, "GET")
			if err != nil {
				t.Fatalf("%q: %v", h[:5], err)
			}
			if got := resp.status(); got != 400 {
				t.Errorf("%q: got %d; want 400", h[:5], got)
			}
		}
	})
	t.Run("header timeout", func(t *testing.T) {
		c := dialRaw(t, p.addr)
		start := time.Now()
		if !c.closedByPeer(5 * time.Second) {
			t.Fatal("still open after 5s; want closed after read_header_timeout (500ms)")
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("closed after %v; want read_header_timeout (500ms)", d)
		}
	})
	t.Run("partial v1 header", func(t *testing.T) {
		// go-proxyproto refuses a v1 header that does not come in one read
		// (the specification asks senders to send it at once): a slow
		// sender is closed at once rather than held.
		c := dialRaw(t, p.addr)
		_, _ = io.WriteString(c.conn, "PROXY TCP4 203.0.113.7")
		if !c.closedByPeer(5 * time.Second) {
			t.Fatal("still open after 5s; want closed")
		}
	})
	t.Run("TLS after the header", func(t *testing.T) {
		conf := &tls.Config{ServerName: "app.test", RootCAs: testcert.Pool(ca.PEM), NextProtos: []string{"http/1.1"}}
		for _, h := range [][]byte{[]byte("PROXY TCP4 203.0.113.21 127.0.0.1 1 2\r\n"), v2Header(t, "203.0.113.22:1", "127.0.0.1:2")} {
			raw, err := net.DialTimeout("tcp", p.srv.Addr("secure"), e2eTimeout)
			if err != nil {
				t.Fatal(err)
			}
			_ = raw.SetDeadline(time.Now().Add(e2eTimeout))
			if _, err := raw.Write(h); err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(raw, conf)
			if _, err := io.WriteString(tc, get("/doc/tls")); err != nil {
				t.Fatalf("handshake or write: %v", err)
			}
			resp, err := readRawResponse(bufio.NewReader(tc), "GET")
			_ = tc.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.status(); got != 200 {
				t.Fatalf("got %d; want 200", got)
			}
			want := "203.0.113.21"
			if h[0] != 'P' {
				want = "203.0.113.22"
			}
			if got, _ := up.last().get("X-Forwarded-For"); got != want {
				t.Errorf("X-Forwarded-For upstream: got %q; want %q", got, want)
			}
			if got, _ := up.last().get("X-Forwarded-Proto"); got != "https" {
				t.Errorf("X-Forwarded-Proto upstream: got %q; want https", got)
			}
			wantLog = append(wantLog, want)
		}
	})
	t.Run("h2 and h2c after the header", func(t *testing.T) {
		for _, tc := range []struct {
			name, listener, src string
			tls                 bool
		}{
			{"h2c", "web", "203.0.113.31", false},
			{"h2", "secure", "203.0.113.32", true},
		} {
			addr := p.srv.Addr(tc.listener)
			tr := &http2.Transport{AllowHTTP: !tc.tls, DialTLSContext: func(ctx context.Context, network, _ string, conf *tls.Config) (net.Conn, error) {
				c, err := (&net.Dialer{Timeout: e2eTimeout}).DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				if _, err := io.WriteString(c, "PROXY TCP4 "+tc.src+" 127.0.0.1 1 2\r\n"); err != nil {
					return nil, err
				}
				if !tc.tls {
					return c, nil
				}
				conf = conf.Clone()
				conf.ServerName, conf.RootCAs, conf.NextProtos = "app.test", testcert.Pool(ca.PEM), []string{"h2"}
				return tls.Client(c, conf), nil
			}}
			scheme := "http"
			if tc.tls {
				scheme = "https"
			}
			client := &http.Client{Transport: tr, Timeout: e2eTimeout}
			resp, err := client.Get(scheme + "://app.test/doc/h2")
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			tr.CloseIdleConnections()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				t.Fatalf("%s: got %d %s; want 200 over HTTP/2", tc.name, resp.StatusCode, resp.Proto)
			}
			if got, _ := up.last().get("X-Forwarded-For"); got != tc.src {
				t.Errorf("%s: X-Forwarded-For upstream: got %q; want %q", tc.name, got, tc.src)
			}
			wantLog = append(wantLog, tc.src)
		}
	})

	text := scrapeMetrics(t, p)
	for _, m := range []struct {
		listener, reason string
		want             float64
	}{
		{"web", "proxy_protocol_header", 5}, // 3 bad headers, a timeout, a partial header
		{"other", "proxy_protocol_untrusted", 1},
	} {
		got, _ := metricSum(text, "rampart_connections_refused_total", map[string]string{"listener": m.listener, "reason": m.reason})
		if got != m.want {
			t.Errorf("rampart_connections_refused_total{listener=%q,reason=%q}: got %v; want %v", m.listener, m.reason, got, m.want)
		}
	}

	p.stop(t)
	var got []string
	for _, l := range readClientLines(t, logPath) {
		if l.Status != 400 { // the plain listener's bad requests
			got = append(got, l.ClientIP)
		}
	}
	if strings.Join(got, " ") != strings.Join(wantLog, " ") {
		t.Errorf("access log client_ip:\n got %v\nwant %v", got, wantLog)
	}
}

// TestE2EProxyProtocolReload: a reload turns the PROXY protocol on and off
// on a listener it keeps, and changes the trusted peers, for the
// connections accepted after it.
func TestE2EProxyProtocolReload(t *testing.T) {
	up := accessUpstream(t)
	yaml := func(pp string) string {
		return oneUpstreamConfig(up.addr(), pp, "", "")
	}
	p := startProxy(t, yaml(""))
	reload := func(pp string) {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml(pp)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := p.srv.Reload(cfg); err != nil || !changed {
			t.Fatalf("Reload: changed %v, error %v; want true, nil", changed, err)
		}
	}
	const header = "PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n"
	// try sends a request with or without the header: the status, or 0
	// when the connection was closed without one.
	try := func(withHeader bool) int {
		t.Helper()
		c := dialRaw(t, p.addr)
		req := "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"
		if withHeader {
			req = header + req
		}
		_, _ = io.WriteString(c.conn, req)
		resp, err := readRawResponse(c.br, "GET")
		if err != nil {
			return 0
		}
		return resp.status()
	}
	steps := []struct {
		name, pp         string
		without, withHdr int
		xffAfterWithHdr  string
	}{
		{"off", "", 200, 400, ""},
		{"on, trusted", "proxy_protocol: {trusted: [127.0.0.1]}", 0, 200, "203.0.113.7"},
		{"on, not trusted", "proxy_protocol: {trusted: [192.0.2.0/24]}", 0, 0, ""},
		{"off again", "", 200, 400, ""},
	}
	for i, st := range steps {
		if i > 0 {
			reload(st.pp)
		}
		if got := try(false); got != st.without {
			t.Errorf("%s: without a header: got %d; want %d", st.name, got, st.without)
		}
		if got := try(true); got != st.withHdr {
			t.Errorf("%s: with a header: got %d; want %d", st.name, got, st.withHdr)
		}
		if st.xffAfterWithHdr != "" {
			if got, _ := up.last().get("X-Forwarded-For"); got != st.xffAfterWithHdr {
				t.Errorf("%s: X-Forwarded-For upstream: got %q; want %q", st.name, got, st.xffAfterWithHdr)
			}
		}
	}
}

// clientLine is the part of an access log line the PROXY tests read.
type clientLine struct {
	ClientIP string `json:"client_ip"`
	Status   int    `json:"status"`
}

func readClientLines(t *testing.T, path string) []clientLine {
	t.Helper()
	var out []clientLine
	for _, l := range readURILines(t, path) {
		var c clientLine
		if raw, ok := l.has["client_ip"]; ok {
			c.ClientIP = strings.Trim(string(raw), `"`)
		}
		c.Status = l.Status
		out = append(out, c)
	}
	return out
}

// TestE2EProxyProtocolLimitsAndWAF: the carried address is the client of
// the client_ip rate limit (each carried client has its own budget, though
// every connection comes from the one balancer) and the WAF's REMOTE_ADDR.
func TestE2EProxyProtocolLimitsAndWAF(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: "127.0.0.1:0"
    proxy_protocol: {trusted: [127.0.0.1]}
upstreams:
  app: {targets: [{url: "http://%s"}]}
rate_limits:
  one: {rate: 1/m, burst: 1}
waf:
  byaddr:
    mode: block
    rules: |
      SecRule REMOTE_ADDR "@ipMatch 203.0.113.66" "id:10001,phase:1,deny,status:403,log"
routes:
  - name: limited
    match: {path_prefix: /limited/}
    upstream: app
    rate_limit: one
  - name: waf
    upstream: app
    waf: byaddr
access_log: {path: "off"}
`, up.addr()))
	send := func(src, path string) int {
		t.Helper()
		c := dialRaw(t, p.addr)
		return c.roundTrip("PROXY TCP4 " + src + " 127.0.0.1 1 2\r\nGET " + path + " HTTP/1.1\r\nHost: app.test\r\n\r\n").status()
	}
	steps := []struct {
		name, src, path string
		want            int
	}{
		{"first client's budget", "203.0.113.1", "/limited/a", 200},
		{"first client again: refused", "203.0.113.1", "/limited/a", 429},
		{"second client, same balancer: its own budget", "203.0.113.2", "/limited/a", 200},
		{"WAF rule on the carried address", "203.0.113.66", "/a", 403},
		{"WAF: another carried address", "203.0.113.67", "/a", 200},
	}
	for _, st := range steps {
		if got := send(st.src, st.path); got != st.want {
			t.Errorf("%s: got %d; want %d", st.name, got, st.want)
		}
	}
}

// TestE2EProxyProtocolConnectionsPerIP: max_connections_per_ip counts the
// carried client, not the balancer every connection comes from.
func TestE2EProxyProtocolConnectionsPerIP(t *testing.T) {
	up := accessUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(),
		"proxy_protocol: {trusted: [127.0.0.1]}\nlimits: {max_connections_per_ip: 1}", "", ""))
	// Both connections are accepted before either sends its header: at
	// accept, both come from the balancer, which the limit does not count.
	a, b := dialRaw(t, p.addr), dialRaw(t, p.addr)
	time.Sleep(50 * time.Millisecond)
	header := func(c *rawClient, src string) {
		t.Helper()
		if _, err := io.WriteString(c.conn, "PROXY TCP4 "+src+" 127.0.0.1 1 2\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	open := func(src string) *rawClient {
		t.Helper()
		c := dialRaw(t, p.addr)
		header(c, src)
		return c
	}
	get := "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"
	header(a, "203.0.113.1")
	header(b, "203.0.113.2")
	if got := a.roundTrip(get).status(); got != 200 {
		t.Fatalf("first client: got %d; want 200", got)
	}
	if got := b.roundTrip(get).status(); got != 200 {
		t.Fatalf("second client: got %d; want 200", got)
	}
	again := open("203.0.113.1") // the first client's second connection
	_, _ = io.WriteString(again.conn, get)
	if !again.closedByPeer(e2eTimeout) {
		t.Error("the first client's second connection: not closed; want refused by max_connections_per_ip")
	}
	if got := a.roundTrip(get).status(); got != 200 {
		t.Errorf("the first connection after the refusal: got %d; want 200", got)
	}
}
