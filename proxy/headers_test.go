package proxy

import (
	"bufio"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// parseRequest reads a raw request the way the server does.
func parseRequest(t testing.TB, raw string) *fasthttp.Request {
	t.Helper()
	req := &fasthttp.Request{}
	if err := req.Header.Read(bufioReader(raw)); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return req
}

func TestPrepareRequest(t *testing.T) {
	tests := []struct {
		name        string
		raw         string
		tls         bool
		trusted     bool
		underscores bool
		subject     bool                // the proxy set X-Client-Cert-Subject
		want        map[string]string   // header -> value; "" means absent
		order       map[string][]string // header -> every value, in order
	}{
		{
			name: "plain request gets proxy headers",
			raw:  "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n",
			want: map[string]string{
				"Host": "app.example", "X-Forwarded-For": "192.0.2.7",
				"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example",
			},
		},
		{
			name: "https listener",
			raw:  "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n",
			tls:  true,
			want: map[string]string{"X-Forwarded-Proto": "https"},
		},
		{
			name: "XFF of an untrusted peer replaced",
			raw:  "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n",
			want: map[string]string{"X-Forwarded-For": "192.0.2.7"},
		},
		{
			name:  "several XFF lines of an untrusted peer replaced by one",
			raw:   "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
			want:  map[string]string{"X-Forwarded-For": "192.0.2.7"},
			order: map[string][]string{"X-Forwarded-For": {"192.0.2.7"}},
		},
		{
			name:    "XFF of a trusted peer appended",
			raw:     "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\r\n",
			trusted: true,
			want:    map[string]string{"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 192.0.2.7"},
		},
		{
			name:    "several XFF lines of a trusted peer joined in order",
			raw:     "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
			trusted: true,
			want:    map[string]string{"X-Forwarded-For": "10.0.0.1, 10.0.0.2, 192.0.2.7"},
		},
		{
			name: "hop-by-hop headers removed",
			raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n" +
				"Proxy-Authorization: Basic eA==\r\nX-Keep: yes\r\n\r\n",
			want: map[string]string{
				"Connection": "", "Keep-Alive": "", "Proxy-Connection": "", "Te": "",
				"Trailer": "", "Upgrade": "", "Proxy-Authorization": "", "X-Keep": "yes",
			},
		},
		{
			name: "headers named by Connection removed",
			raw:  "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Secret, x-other\r\nX-Secret: s\r\nX-Other: o\r\nX-Keep: k\r\n\r\n",
			want: map[string]string{"X-Secret": "", "X-Other": "", "X-Keep": "k", "Connection": ""},
		},
		{
			name: "Connection cannot remove framing or host",
			raw:  "POST / HTTP/1.1\r\nHost: h\r\nConnection: Host, Content-Length, X-Forwarded-For\r\nContent-Length: 0\r\n\r\n",
			want: map[string]string{"Host": "h", "X-Forwarded-For": "192.0.2.7"},
		},
		{
			name: "client-sent forwarding headers replaced when peer untrusted",
			raw:  "GET / HTTP/1.1\r\nHost: real\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed\r\n\r\n",
			want: map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "real"},
		},
		{
			name: "identity fields of an untrusted client removed",
			raw: "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\n" +
				"X-Forwarded-Prefix: /a\r\nX-Client-Cert-Subject: CN=a\r\nX-Keep: k\r\n\r\n",
			want: map[string]string{"Forwarded": "", "X-Real-Ip": "", "X-Forwarded-Port": "", "X-Forwarded-Prefix": "",
				"X-Client-Cert-Subject": "", "X-Keep": "k"},
		},
		{
			name:    "identity fields of a trusted peer kept, but the subject",
			raw:     "GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\nX-Forwarded-Port: 1\r\nX-Client-Cert-Subject: CN=a\r\n\r\n",
			trusted: true,
			want:    map[string]string{"Forwarded": "for=1.2.3.4", "X-Real-Ip": "1.2.3.4", "X-Forwarded-Port": "1", "X-Client-Cert-Subject": ""},
		},
		{
			name:    "subject the proxy set kept, Connection naming it or not",
			raw:     "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Client-Cert-Subject\r\nX-Client-Cert-Subject: CN=verified\r\n\r\n",
			subject: true,
			want:    map[string]string{"X-Client-Cert-Subject": "CN=verified"},
		},
		{
			name: "underscore names removed",
			raw:  "GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nx_api_key: k\r\nX_Api_Key: k2\r\nX-Keep: k\r\n\r\n",
			want: map[string]string{"X_forwarded_for": "", "X_api_key": "", "X-Keep": "k", "X-Forwarded-For": "192.0.2.7"},
		},
		{
			name:        "underscore names kept when asked, owned ones not",
			raw:         "GET / HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\nX_Request_Id: x\r\nX_Client_Cert_Subject: CN=a\r\nX_Api_Key: k\r\n\r\n",
			underscores: true,
			want:        map[string]string{"X_forwarded_for": "", "X_request_id": "", "X_client_cert_subject": "", "X_api_key": "k"},
		},
		{
			name: "duplicates of the fields the proxy sets replaced",
			raw: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n" +
				"X-Forwarded-Host: a\r\nX-Forwarded-Host: b\r\nX-Request-Id: one\r\nX-Request-Id: two\r\n\r\n",
			want: map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"},
		},
		{
			name: "order of a repeated name kept when fields are deleted",
			raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nX-A: 1\r\nKeep-Alive: 5\r\nX-B: b\r\n" +
				"X-A: 2\r\nX_U: u\r\nX-C: c\r\nX-A: 3\r\n\r\n",
			want:  map[string]string{"X-A": "1", "X-B": "b", "X-C": "c", "X_u": ""},
			order: map[string][]string{"X-A": {"1", "2", "3"}},
		},
		{
			name:    "forwarding headers kept from a trusted peer",
			raw:     "GET / HTTP/1.1\r\nHost: inner\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: outer\r\n\r\n",
			trusted: true,
			want:    map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "outer"},
		},
	}
	for _, tt := range tests {
		for _, built := range []bool{false, true} {
			name := tt.name
			if built {
				name += ", built field by field (HTTP/2)"
			}
			t.Run(name, func(t *testing.T) {
				req := parseRequest(t, tt.raw)
				if built {
					req = builtRequest(req)
				}
				f := 0
				if tt.tls {
					f |= fwdTLS
				}
				if tt.trusted {
					f |= fwdTrusted
				}
				if tt.underscores {
					f |= fwdUnderscores
				}
				if tt.subject {
					f |= fwdSubject
				}
				testPrepareRequest(t, req, f, tt.want, tt.order)
			})
		}
	}
}

// builtRequest copies req as the HTTP/2 wire builds one: field by field,
// with no raw header block.
func builtRequest(req *fasthttp.Request) *fasthttp.Request {
	out := &fasthttp.Request{}
	out.Header.SetMethodBytes(req.Header.Method())
	out.Header.SetRequestURIBytes(req.Header.RequestURI())
	out.Header.SetHostBytes(req.Header.Host())
	for k, v := range req.Header.AllInOrder() {
		if !nameIs(k, "Host") {
			out.Header.AddBytesKV(k, v)
		}
	}
	return out
}

// testPrepareRequest runs prepareRequest on req with the flags f
// (fwd*) and checks the fields of want (absent when "") and the values of
// order, in order.
func testPrepareRequest(t *testing.T, req *fasthttp.Request, f int, want map[string]string, order map[string][]string) {
	t.Helper()
	x := &exchange{peer: []byte("192.0.2.7"), reqID: []byte("rid-1")}
	prepareRequest(req, x, req.Header.Host(), f)
	for k, want := range want {
		if got := string(req.Header.Peek(k)); got != want {
			t.Errorf("%s: got %q; want %q\n%s", k, got, want, req.Header.String())
		}
	}
	for k, want := range order {
		var got []string
		for _, v := range req.Header.PeekAll(k) {
			got = append(got, string(v))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: got %q; want %q in this order", k, got, want)
		}
	}
	if got := string(req.Header.Peek(hdrXRequestID)); got != "rid-1" {
		t.Errorf("X-Request-Id: got %q; want %q", got, "rid-1")
	}
	for _, name := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Request-Id"} {
		if n := len(req.Header.PeekAll(name)); n != 1 {
			t.Errorf("%s fields: got %d; want 1\n%s", name, n, req.Header.String())
		}
	}
}

func TestResponseHopRemoved(t *testing.T) {
	var h fasthttp.ResponseHeader
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: X-Internal\r\nKeep-Alive: timeout=5\r\n" +
		"X-Internal: secret\r\nProxy-Authenticate: Basic\r\nX-Public: p\r\n\r\n"
	if err := h.Read(bufioReader(raw)); err != nil {
		t.Fatal(err)
	}
	if bits := scanResponseHop(&h); bits != 0 {
		deleteResponseHop(&h, bits)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "X-Internal", "Proxy-Authenticate"} {
		if v := h.Peek(k); len(v) != 0 {
			t.Errorf("%s: got %q; want it removed", k, v)
		}
	}
	if got := string(h.Peek("X-Public")); got != "p" {
		t.Errorf("X-Public: got %q; want %q", got, "p")
	}
}

func TestRequestID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := string(appendRequestID(nil))
		if !uuid.MatchString(id) {
			t.Fatalf("got %q; want a version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("got %q twice", id)
		}
		seen[id] = true
	}
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{"abc-123", true},
		{"4f1c2a9e-1b2c-4d5e-8f90-a1b2c3d4e5f6", true},
		{"", false},
		{"has space", false},
		{"quote\"", false},
		{"new\nline", false},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
	} {
		if got := validRequestID([]byte(tt.id)); got != tt.want {
			t.Errorf("validRequestID(%q): got %v; want %v", tt.id, got, tt.want)
		}
	}
}

// TestHeaderRewriteAllocs holds the header rewrite of a typical request,
// and of one with fields to remove, to zero allocations.
func TestHeaderRewriteAllocs(t *testing.T) {
	for _, raw := range []string{
		"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8\r\n" +
			"Accept: */*\r\nConnection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
		"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: api.example.com\r\nCookie: a=1\r\nCookie: b=2\r\n" +
			"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nX_Forwarded_For: 6.6.6.6\r\nX_Api_Key: k\r\n" +
			"Forwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: https\r\n" +
			"X-Client-Cert-Subject: CN=a\r\nX-Request-Id: a\r\nX-Request-Id: b\r\n\r\n",
	} {
		req := parseRequest(t, raw)
		var pristine fasthttp.Request
		req.CopyTo(&pristine)
		x := &exchange{peer: []byte("192.0.2.7"), reqID: []byte("rid-1"), xff: make([]byte, 0, 64)}
		allocs := testing.AllocsPerRun(200, func() {
			pristine.Header.CopyTo(&req.Header)
			x.xff = x.xff[:0]
			prepareRequest(req, x, req.Header.Host(), 0)
		})
		if allocs != 0 {
			t.Errorf("allocs per rewrite of %q: got %v; want 0", firstLine(raw), allocs)
		}
	}
}

func BenchmarkPrepareRequest(b *testing.B) {
	raw := "GET /api/v1/items?id=7 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: curl/8\r\n" +
		"Accept: */*\r\nConnection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n"
	req := parseRequest(b, raw)
	var pristine fasthttp.Request
	req.CopyTo(&pristine)
	x := &exchange{peer: []byte("192.0.2.7"), reqID: []byte("rid-1"), xff: make([]byte, 0, 64)}
	b.ReportAllocs()
	for b.Loop() {
		pristine.Header.CopyTo(&req.Header)
		x.xff = x.xff[:0]
		prepareRequest(req, x, req.Header.Host(), 0)
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
