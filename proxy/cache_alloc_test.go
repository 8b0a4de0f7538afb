package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/rampart-proxy/rampart/config"
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
	n := requestAllocs(t, p.addr, "GET /hit HTTP/1.1\r\nHost: bench.local\r\n\r\n")
	if got := calls.Load(); got != 1 {
		t.Fatalf("upstream requests: got %d; want 1 (every other one a hit)", got)
	}
	if want := 0.0; n > want {
		t.Errorf("got %v allocations per cache hit; want %v", n, want)
	}
}

// BenchmarkCacheHitGET drives a cached route whose every request is a
// hit, beside BenchmarkProxyGET (the same GET forwarded).
func BenchmarkCacheHitGET(b *testing.B) {
	up := startHTTPUpstreamB(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = io.WriteString(w, "Hello, World!")
	}))
	cfg, err := config.Parse([]byte(cacheConfig(up, "max_size: 16MiB", "")), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Shutdown(b.Context()) })
	benchGET(b, srv.Addr("web"))
}

// startHTTPUpstreamB is an httptest upstream for a benchmark.
func startHTTPUpstreamB(b *testing.B, h http.Handler) string {
	s := httptest.NewServer(h)
	b.Cleanup(s.Close)
	return s.Listener.Addr().String()
}
