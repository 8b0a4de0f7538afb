package proxy

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// patternBlock is the repeating content of generated bodies; its length is
// not a power of two, so buffer boundaries fall at varying offsets.
var patternBlock = func() []byte {
	b := make([]byte, 65521)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}()

// patternReader yields n bytes of the pattern without holding them.
type patternReader struct {
	off, n int64
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	if rem := r.n - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	done := 0
	for done < len(p) {
		i := int((r.off + int64(done)) % int64(len(patternBlock)))
		done += copy(p[done:], patternBlock[i:])
	}
	r.off += int64(done)
	return done, nil
}

// patternCRC is the CRC-32C of the first n bytes of the pattern.
func patternCRC(n int64) uint32 {
	h := crc32.New(castagnoli)
	_, _ = io.Copy(h, &patternReader{n: n})
	return h.Sum32()
}

// countCRC reads r to the end and returns its length and CRC-32C.
func countCRC(r io.Reader) (int64, uint32, error) {
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, r)
	return n, h.Sum32(), err
}

// heapWatch samples the heap while a transfer runs and reports the peak
// growth of HeapInuse and the growth of Sys over the starting point.
type heapWatch struct {
	base, baseSys uint64
	peak          atomic.Uint64
	stop          chan struct{}
	wg            sync.WaitGroup
}

func watchHeap() *heapWatch {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &heapWatch{base: ms.HeapInuse, baseSys: ms.Sys, stop: make(chan struct{})}
	w.peak.Store(ms.HeapInuse)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > w.peak.Load() {
					w.peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	return w
}

// done stops sampling and returns the peak HeapInuse growth and Sys growth.
func (w *heapWatch) done() (heapGrowth, sysGrowth int64) {
	close(w.stop)
	w.wg.Wait()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(w.peak.Load()) - int64(w.base), int64(ms.Sys) - int64(w.baseSys)
}

// hiddenReader hides a reader's type so net/http cannot learn its length
// and sends the body chunked.
type hiddenReader struct{ r io.Reader }

func (h hiddenReader) Read(p []byte) (int, error) { return h.r.Read(p) }

// TestE2ELargeBodies streams large uploads and downloads through the proxy
// and checks that the proxy's heap does not grow with the body.
func TestE2ELargeBodies(t *testing.T) {
	big, medium := int64(256<<20), int64(256<<20)
	if raceEnabled {
		big, medium = 32<<20, 16<<20
	}
	const maxGrowth = 32 << 20

	up := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			n, sum, err := countCRC(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "%d %08x te=%v cl=%d", n, sum, r.TransferEncoding, r.ContentLength)
		case "/download":
			n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
			if r.URL.Query().Get("chunked") == "" {
				w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
			}
			_, _ = io.Copy(w, &patternReader{n: n})
		}
	}))
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	base := "http://" + p.addr
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 60 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	cases := []struct {
		name     string
		upload   bool
		chunked  bool
		size     int64
		wantTail string // for uploads: what the upstream saw of the framing
	}{
		{name: "upload with content-length", upload: true, size: big, wantTail: fmt.Sprintf(" te=[] cl=%d", big)},
		{name: "upload chunked of unknown length", upload: true, chunked: true, size: medium, wantTail: " te=[chunked] cl=-1"},
		{name: "download with content-length", size: big},
		{name: "download chunked", chunked: true, size: medium},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCRC := patternCRC(tc.size)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var req *http.Request
			var err error
			if tc.upload {
				var body io.Reader = &patternReader{n: tc.size}
				if tc.chunked {
					body = hiddenReader{body}
				}
				req, err = http.NewRequestWithContext(ctx, "POST", base+"/upload", body)
				if err != nil {
					t.Fatal(err)
				}
				if !tc.chunked {
					req.ContentLength = tc.size
				}
			} else {
				u := fmt.Sprintf("%s/download?n=%d", base, tc.size)
				if tc.chunked {
					u += "&chunked=1"
				}
				req, err = http.NewRequestWithContext(ctx, "GET", u, nil)
				if err != nil {
					t.Fatal(err)
				}
			}
			req.Host = "app.test"

			start := time.Now()
			w := watchHeap()
			resp, err := client.Do(req)
			if err != nil {
				w.done()
				t.Fatalf("request: %v", err)
			}
			var n int64
			var sum uint32
			var body []byte
			if tc.upload {
				body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			} else {
				n, sum, err = countCRC(resp.Body)
			}
			resp.Body.Close()
			heapGrowth, sysGrowth := w.done()
			t.Logf("%d MiB in %v; peak HeapInuse growth %d KiB, Sys growth %d KiB",
				tc.size>>20, time.Since(start).Round(time.Millisecond), heapGrowth>>10, sysGrowth>>10)
			if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status: got %d; want 200 (body %q)", resp.StatusCode, body)
			}
			if tc.upload {
				want := fmt.Sprintf("%d %08x%s", tc.size, wantCRC, tc.wantTail)
				if string(body) != want {
					t.Errorf("upstream saw: got %q; want %q", body, want)
				}
			} else {
				if n != tc.size || sum != wantCRC {
					t.Errorf("downloaded: got %d bytes crc %08x; want %d bytes crc %08x", n, sum, tc.size, wantCRC)
				}
				if !tc.chunked && resp.ContentLength != tc.size {
					t.Errorf("Content-Length: got %d; want %d", resp.ContentLength, tc.size)
				}
			}
			if heapGrowth > maxGrowth {
				t.Errorf("peak HeapInuse growth: got %d MiB; want under %d MiB for a %d MiB body",
					heapGrowth>>20, maxGrowth>>20, tc.size>>20)
			}
			if sysGrowth > 2*maxGrowth {
				t.Errorf("Sys growth: got %d MiB; want under %d MiB for a %d MiB body",
					sysGrowth>>20, 2*maxGrowth>>20, tc.size>>20)
			}
		})
	}
}
