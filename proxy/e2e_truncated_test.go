package proxy

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestE2ETruncatedBodyIsTheClients: a client that ends its side before the
// body it declared with Content-Length has arrived gets 400, its own fault,
// not a 502 blamed on the target; and the target is not counted as failing
// for it: with passive ejection after a single failure, it stays in. (fasthttp's body stream reports such a body's end as a
// normal one; the proxy used to forward the short body, meet fasthttp's
// length check, and answer 502.)
func TestE2ETruncatedBodyIsTheClients(t *testing.T) {
	up := okUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "passive: {max_failures: 1, ejection: 30s, max_ejection_percent: 100}", ""))
	for _, tc := range []struct {
		name           string
		declared, sent int
	}{
		{"half of a large body", 200000, 100000},
		{"just past the part read whole", 100000, 70000},
		{"one byte short", 300000, 299999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p.addr)
			req := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n", tc.declared) +
				strings.Repeat("a", tc.sent)
			if _, err := io.WriteString(c.conn, req); err != nil {
				t.Fatalf("write: %v", err)
			}
			if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatalf("close write: %v", err)
			}
			resp, err := readRawResponse(c.br, "POST")
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			if resp.status() != 400 {
				t.Errorf("status: got %d; want 400", resp.status())
			}
			if targetState(p, "app", 0).Ejected(time.Now()) {
				t.Errorf("the target was ejected; want a client's short body not counted against it")
			}
			if got := rawGet(t, p.addr, "app.test", "/after").status(); got != 200 {
				t.Errorf("next request: got %d; want 200", got)
			}
		})
	}
}
