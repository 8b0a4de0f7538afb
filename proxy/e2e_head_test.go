package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestE2EHeadAnswerHasNoBody sends a HEAD then a GET on one connection and
// checks that the HEAD's answer ends with its header: no body, not even
// the proxy's own (a 404 here), so that the next answer starts where the
// client expects it.
func TestE2EHeadAnswerHasNoBody(t *testing.T) {
	p := startProxy(t, `
listeners:
  web: {address: 127.0.0.1:0}
routes:
  - {name: ok, match: {path_prefix: /ok}, respond: {status: 200, body: "hello\n"}}
access_log: {path: "off"}
`)
	for _, path := range []string{"/nope", "/ok"} {
		t.Run(path, func(t *testing.T) {
			c, err := net.Dial("tcp", p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(e2eTimeout))
			if _, err := io.WriteString(c, "HEAD "+path+" HTTP/1.1\r\nHost: a.test\r\n\r\nGET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			for i := 0; ; i++ { // the HEAD's header
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 && !strings.HasPrefix(line, "HTTP/1.1 ") {
					t.Fatalf("HEAD: got status line %q", line)
				}
				if line == "\r\n" {
					break
				}
			}
			next, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if next != "HTTP/1.1 200 OK\r\n" {
				t.Errorf("after the HEAD's header: got %q; want the GET's status line", next)
			}
		})
	}
}
