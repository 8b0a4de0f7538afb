package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// responseHopNames are the hop-by-hop fields no answer relayed from a target
// may carry (net/http's Header canonicalizes names, so any spelling counts).
var responseHopNames = []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Upgrade"}

// FuzzProxyResponse has the target answer a GET with arbitrary bytes and
// checks what the client gets: an answer within the deadline that net/http
// reads, in HTTP/1.1 with a status within 100-599, without the target's
// hop-by-hop fields in any spelling, with one Date and one X-Request-Id, and
// no panic in the proxy. (Fields a target's Connection names are covered by
// TestE2EHopByHopResponse.)
func FuzzProxyResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nkeep-alive: timeout=5\r\nconnection: x-nominated\r\nx-nominated: 1\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nKEEP-ALIVE: 1\r\nTE: trailers\r\nUPGRADE: h2c\r\nPROXY-CONNECTION: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\nDate: Tue, 02 Jan 2024 00:00:00 GMT\r\nx-request-id: a\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Trailer: t\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-Fold: a\r\n b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\n\r\nread until the close",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n!",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
		"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		"HTTP/0.0 000 \nX-a:\r\n\r\n0",
		"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	var mu sync.Mutex // guards answer
	var answer string
	up := startRawUpstream(f, func(*rawMessage) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		return answer, true // then the target closes its connection
	})
	addr, pl := startFuzzServer(f, smugglingConfig(up.addr()))

	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			t.Skip("larger than the read buffer; nothing new")
		}
		mu.Lock()
		answer = string(raw)
		mu.Unlock()
		got, err := exchangeRaw(addr, []byte("GET /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		if p := pl.take(); len(p) > 0 {
			t.Fatalf("the proxy panicked on the answer %q: %s", raw, p)
		}
		if err != nil {
			t.Fatalf("answer %q: %v (got %q)", raw, err, got)
		}
		if len(got) == 0 {
			// Known: a body the target breaks off before the proxy has
			// sent anything of its answer closes the client's connection
			// without a word (a 502 would be better). Whatever is sent
			// must pass the checks below.
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("answer %q: the client got what net/http cannot read (%v): %q", raw, err, got)
		}
		// A body streamed from the target may be cut when the target
		// breaks off: the proxy can only close the connection then.
		if _, err := io.Copy(io.Discard, resp.Body); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("answer %q: reading the body: %v (got %q)", raw, err, got)
		}
		if resp.Proto != "HTTP/1.1" || resp.StatusCode < 100 || resp.StatusCode > 599 {
			t.Errorf("answer %q: the client got %s %d; want HTTP/1.1 and a status within 100-599", raw, resp.Proto, resp.StatusCode)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return // not an answer to this request; nothing more to check
		}
		for _, name := range responseHopNames {
			if v, ok := resp.Header[name]; ok {
				t.Errorf("answer %q: the client got %s: %q (got %q)", raw, name, v, got)
			}
		}
		for _, v := range resp.Header["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				if tok = strings.TrimSpace(strings.ToLower(tok)); tok != "close" && tok != "keep-alive" {
					t.Errorf("answer %q: the client got Connection: %q (got %q)", raw, v, got)
				}
			}
		}
		if n := len(resp.Header["Date"]); n > 1 {
			t.Errorf("answer %q: %d Date fields (got %q)", raw, n, got)
		}
		if n := len(resp.Header["X-Request-Id"]); n != 1 {
			t.Errorf("answer %q: %d X-Request-Id fields; want 1 (got %q)", raw, n, got)
		}
	})
}
