package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestCacheHitAllocs bounds the allocations of an answer from the memory
// cache (the whole request, from the client's bytes to the answer's).
func TestCacheHitAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	var calls atomic.Int64
	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "a cached answer")
	}))
	p := startProxy(t, cacheConfig(up.addr(), "max_size: 1MiB", ""))
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /hit HTTP/1.1\r\nHost: bench.local\r\n\r\n")
	br := bufio.NewReaderSize(c, 4<<10)
	var failed error
	do := func() {
		_ = c.SetDeadline(time.Now().Add(e2eTimeout))
		if _, err := c.Write(req); err != nil {
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
	if got := calls.Load(); got != 1 {
		t.Fatalf("upstream requests: got %d; want 1 (every other one a hit)", got)
	}
	if want := 0.0; n > want {
		t.Errorf("got %v allocations per cache hit; want %v", n, want)
	}
}
