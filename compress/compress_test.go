package compress

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestNegotiate(t *testing.T) {
	all := []Coding{Zstd, Brotli, Gzip}
	tests := []struct {
		name    string
		accept  string
		offered []Coding
		want    Coding
	}{
		{"no field", "", all, Identity},
		{"browser", "gzip, deflate, br, zstd", all, Zstd},
		{"server order on a tie", "gzip, br", all, Brotli},
		{"gzip only", "gzip", all, Gzip},
		{"x-gzip", "x-gzip", all, Gzip},
		{"case", "GZip", all, Gzip},
		{"q picks", "zstd;q=0.5, gzip;q=0.8, br;q=0.1", all, Gzip},
		{"q=0 refuses", "zstd;q=0, br;q=0, gzip", all, Gzip},
		{"every coding refused", "zstd;q=0, br;q=0, gzip;q=0", all, Identity},
		{"star", "*", all, Zstd},
		{"star refused, gzip named", "*;q=0, gzip", all, Gzip},
		{"star q=0 alone", "*;q=0", all, Identity},
		{"identity preferred", "gzip;q=0.5, identity", all, Identity},
		{"identity refused", "identity;q=0, gzip;q=0.1", all, Gzip},
		{"not offered", "br", []Coding{Gzip}, Identity},
		{"offered order", "gzip, zstd", []Coding{Gzip, Zstd}, Gzip},
		{"unknown only", "deflate, compress", all, Identity},
		{"spaces and params", " br ; level=1 ; q=0.9 ,gzip;q=1.0", all, Gzip},
		{"q three decimals", "br;q=0.001", all, Brotli},
		{"malformed q ignored", "zstd;q=2, gzip;q=abc, br;q=0.5", all, Brotli},
		{"empty items", ",,gzip,,", all, Gzip},
		{"Q upper case", "gzip;Q=0, br", all, Brotli},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Negotiate([]byte(tt.accept), tt.offered); got != tt.want {
				t.Errorf("Negotiate(%q) = %v; want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func TestNegotiateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	accept := []byte("gzip;q=0.8, deflate, br;q=0.9, zstd")
	offered := []Coding{Zstd, Brotli, Gzip}
	if n := testing.AllocsPerRun(100, func() { Negotiate(accept, offered) }); n != 0 {
		t.Errorf("got %v allocations; want 0", n)
	}
}

// decode decodes b with the libraries' own readers.
func decode(t *testing.T, c Coding, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip.NewReader: %v", err)
		}
		r = zr
	case Brotli:
		r = brotli.NewReader(bytes.NewReader(b))
	case Zstd:
		zr, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("zstd.NewReader: %v", err)
		}
		defer zr.Close()
		r = zr
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %v: %v", c, err)
	}
	return out
}

// corpus is a body that compresses (text with repeats) of n bytes.
func corpus(n int) []byte {
	words := strings.Fields("the quick brown fox jumps over the lazy dog lorem ipsum dolor sit amet rampart proxy")
	rnd := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rnd.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

var levels = map[Coding]int{Gzip: 5, Brotli: 4, Zstd: 3}

func TestAppendRoundTrip(t *testing.T) {
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		for _, n := range []int{0, 1, 1000, 200 << 10} {
			t.Run(c.String()+"/"+strconv.Itoa(n), func(t *testing.T) {
				src := corpus(n)
				e := For(c, levels[c])
				prefix := []byte("keep")
				out := e.Append(append([]byte(nil), prefix...), src)
				if !bytes.HasPrefix(out, prefix) {
					t.Fatalf("dst prefix lost")
				}
				if got := decode(t, c, out[len(prefix):]); !bytes.Equal(got, src) {
					t.Errorf("got %d bytes back; want the %d sent", len(got), len(src))
				}
				if n >= 1000 && len(out)-len(prefix) >= n/2 {
					t.Errorf("got %d bytes encoded from %d; want under half", len(out)-len(prefix), n)
				}
			})
		}
	}
}

// chunkedSource hands out its body in reads of the given sizes, then EOF
// or fail.
type chunkedSource struct {
	body   []byte
	sizes  []int
	fail   error
	closed bool
}

func (s *chunkedSource) Read(p []byte) (int, error) {
	if len(s.body) == 0 {
		if s.fail != nil {
			return 0, s.fail
		}
		return 0, io.EOF
	}
	n := len(s.body)
	if len(s.sizes) > 0 {
		n = min(n, s.sizes[0])
		s.sizes = s.sizes[1:]
	}
	n = min(n, len(p))
	copy(p, s.body[:n])
	s.body = s.body[n:]
	return n, nil
}

func (s *chunkedSource) Close() error { s.closed = true; return nil }

type sinkRecord struct {
	c       Coding
	in, out int64
	calls   int
}

func (s *sinkRecord) Compressed(c Coding, in, out int64) { s.c, s.in, s.out = c, in, out; s.calls++ }

func TestReaderRoundTrip(t *testing.T) {
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		for _, tc := range []struct {
			name  string
			n     int
			sizes []int
		}{
			{"empty", 0, nil},
			{"one read", 3000, nil},
			{"large fast", 1 << 20, nil},
			{"trickle", 5000, []int{1, 10, 100, 7, 4000}},
		} {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				src := corpus(tc.n)
				s := &chunkedSource{body: src, sizes: tc.sizes}
				var sink sinkRecord
				r := For(c, levels[c]).NewReader(s, &sink)
				enc, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("ReadAll: %v", err)
				}
				if err := r.Close(); err != nil || !s.closed {
					t.Fatalf("Close: %v, source closed %v; want nil, true", err, s.closed)
				}
				if got := decode(t, c, enc); !bytes.Equal(got, src) {
					t.Errorf("got %d bytes back; want the %d sent", len(got), len(src))
				}
				if sink.calls != 1 || sink.c != c || sink.in != int64(tc.n) || sink.out != int64(len(enc)) {
					t.Errorf("sink got %d calls (%v, %d in, %d out); want 1 (%v, %d, %d)",
						sink.calls, sink.c, sink.in, sink.out, c, tc.n, len(enc))
				}
			})
		}
	}
}

// stallSource gives its first part, then blocks until released.
type stallSource struct {
	first   []byte
	release chan struct{}
	rest    []byte
	state   int
}

func (s *stallSource) Read(p []byte) (int, error) {
	switch s.state {
	case 0:
		s.state = 1
		return copy(p, s.first), nil
	case 1:
		<-s.release
		s.state = 2
		return copy(p, s.rest), nil
	}
	return 0, io.EOF
}

func (s *stallSource) Close() error { return nil }

// TestReaderFlushesBeforeStall proves that what arrived before a pause
// reaches the reader, decodable, while the source is still stalled.
func TestReaderFlushesBeforeStall(t *testing.T) {
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			s := &stallSource{first: []byte("data: first event\n\n"), rest: []byte("data: second\n\n"), release: make(chan struct{})}
			r := For(c, levels[c]).NewReader(s, nil)
			defer r.Close()
			buf := make([]byte, 4096)
			n, err := r.Read(buf)
			if err != nil || n == 0 {
				t.Fatalf("first Read: %d, %v; want bytes", n, err)
			}
			var dec io.Reader
			switch c {
			case Gzip:
				zr, err := gzip.NewReader(bytes.NewReader(buf[:n]))
				if err != nil {
					t.Fatal(err)
				}
				dec = zr
			case Brotli:
				dec = brotli.NewReader(bytes.NewReader(buf[:n]))
			case Zstd:
				zr, err := zstd.NewReader(bytes.NewReader(buf[:n]))
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				dec = zr
			}
			got := make([]byte, len(s.first))
			if _, err := io.ReadFull(dec, got); err != nil || !bytes.Equal(got, s.first) {
				t.Errorf("decoded %q (%v) before the stall; want %q", got, err, s.first)
			}
			close(s.release)
		})
	}
}

func TestReaderSourceError(t *testing.T) {
	boom := errors.New("upstream reset")
	src := corpus(100 << 10)
	s := &chunkedSource{body: src, fail: boom}
	r := For(Gzip, 5).NewReader(s, nil)
	defer r.Close()
	enc, err := io.ReadAll(r)
	if !errors.Is(err, boom) {
		t.Fatalf("got error %v; want %v", err, boom)
	}
	// The encoding was not ended: a decoder sees a truncated stream.
	zr, err := gzip.NewReader(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(zr); err == nil {
		t.Errorf("a failed source decoded as a complete body; want a truncated one")
	}
}

func TestAppendAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items: allocations mean nothing")
	}
	src := corpus(8 << 10)
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			e := For(c, levels[c])
			dst := make([]byte, 0, 16<<10)
			e.Append(dst[:0], src) // warm the pool
			n := testing.AllocsPerRun(50, func() { dst = e.Append(dst[:0], src) })
			if n > 0 {
				t.Errorf("got %v allocations per body; want 0", n)
			}
		})
	}
}

func BenchmarkAppend(b *testing.B) {
	src := corpus(64 << 10)
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			e := For(c, levels[c])
			dst := make([]byte, 0, 64<<10)
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				dst = e.Append(dst[:0], src)
			}
			b.ReportMetric(float64(len(dst))/float64(len(src)), "ratio")
		})
	}
}
