package waf

import (
	"bufio"
	"bytes"
	"net/netip"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzInspect feeds arbitrary requests through the adapter: it must not
// panic, and must leave no transaction open.
func FuzzInspect(f *testing.F) {
	f.Add([]byte(sqliGET))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"a\":[1]}"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 44\r\n\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n"))
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n<a/>\r\n0\r\n\r\n"))
	p := blockPolicy(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var req fasthttp.Request
		if err := req.Read(bufio.NewReader(bytes.NewReader(raw))); err != nil {
			return
		}
		ctx := &fasthttp.RequestCtx{}
		ctx.Init(&req, nil, nil)
		v := p.Inspect(ctx, Request{ID: []byte("fuzz"), ClientIP: netip.MustParseAddr("::1")})
		if v.Blocked() {
			v.Respond(ctx, []byte("fuzz"))
		}
		v.Close()
		if n := p.OpenTransactions(); n != 0 {
			t.Fatalf("%d transactions open", n)
		}
	})
}
