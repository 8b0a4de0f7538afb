package proxy

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// TestWAFBlockBodyOutlivesTheExchange drives the pipeline in memory: once
// ServeWire has returned (and put its exchange back in the pool), the
// exchange's scratch buffer is scribbled over, as the next request to take
// it would, and the blocked answer must still name its own request: the
// wire writes it only now.
func TestWAFBlockBodyOutlivesTheExchange(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	h := inMemoryPipeline(t, `
listeners:
  web: {address: 127.0.0.1:0}
waf:
  strict: {mode: block}
routes:
  - {name: all, respond: {status: 200}, waf: strict}
access_log: {path: "off"}
`, "web")
	st := &testStream{peer: netip.MustParseAddr("192.0.2.1")}
	for i := range 20 {
		id := fmt.Sprintf("request-%03d", i)
		resp := serveInMemory(t, h, st, "GET /?q="+url.QueryEscape(sqliPayload)+" HTTP/1.1\r\nHost: app.test\r\nX-Request-Id: "+id+"\r\n\r\n")
		x := exchangePool.Get().(*exchange) // most likely the one just put back
		for j := range x.hdr[:cap(x.hdr)] {
			x.hdr[:cap(x.hdr)][j] = '#'
		}
		exchangePool.Put(x)
		if resp.StatusCode() != http.StatusForbidden || !strings.Contains(string(resp.Body()), id) {
			t.Fatalf("%s: got %d %q; want 403 naming the request", id, resp.StatusCode(), resp.Body())
		}
	}
}
