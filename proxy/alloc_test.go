package proxy

import (
	"bufio"
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWholeRequestAllocs measures whole proxied requests the way fasthttp's
// allocation_test.go measures its server: testing.AllocsPerRun over one
// request on a warm keep-alive connection, through everything: the
// client's bytes read by the HTTP/1.1 wire, the pipeline (route, request
// id, header rewrite, pick), the upstream exchange on a pooled connection,
// the upstream (fasthttp) and the answer written back; here over loopback
// sockets, with a client that allocates nothing itself. Measured: 0 for
// each (the benchmarks' 1 alloc/op is fasthttp's client's).
func TestWholeRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	body := strings.Repeat("x", 16<<10)
	tests := []struct {
		name string
		req  string
		want float64
	}{
		{"GET", "GET /hello HTTP/1.1\r\nHost: bench.local\r\n\r\n", 0},
		{"POST 16 KiB", "POST /items HTTP/1.1\r\nHost: bench.local\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body, 0},
	}
	addr := benchProxy(t, benchUpstream(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := requestAllocs(t, addr, tt.req)
			if n > tt.want {
				t.Errorf("got %v allocations per proxied request; want %v", n, tt.want)
			}
		})
	}
}

// requestAllocs sends req (a whole HTTP/1.1 request) over one keep-alive
// connection to addr, 200 times to warm pools, workers and upstream
// connections, then measures the allocations per request of 500 more. Each
// answer must be a 200 with a Content-Length body (discardResponse).
func requestAllocs(t *testing.T, addr, req string) float64 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := []byte(req)
	br := bufio.NewReaderSize(c, 8<<10)
	var failed error
	do := func() {
		_ = c.SetDeadline(time.Now().Add(e2eTimeout))
		if _, err := c.Write(raw); err != nil {
			failed = err
			return
		}
		if err := discardResponse(br); err != nil {
			failed = err
		}
	}
	for range 200 {
		do()
	}
	n := testing.AllocsPerRun(500, do)
	if failed != nil {
		t.Fatal(failed)
	}
	return n
}

// discardResponse reads one response with a Content-Length body from br,
// allocating nothing.
func discardResponse(br *bufio.Reader) error {
	cl := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first {
			if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
				return &badResponse{line: string(line)}
			}
			continue
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && nameIs(k, "Content-Length") {
			n, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
			cl = n
		}
	}
	if cl < 0 {
		return &badResponse{line: "no Content-Length"}
	}
	_, err := br.Discard(cl)
	return err
}

type badResponse struct{ line string }

func (e *badResponse) Error() string { return "unexpected response: " + e.line }
