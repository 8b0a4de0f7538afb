// Package compress encodes HTTP response bodies in the content codings
// gzip (klauspost/compress), br (andybalholm/brotli) and zstd
// (klauspost/compress/zstd): it negotiates a coding from a request's
// Accept-Encoding (Negotiate), encodes a whole body in memory
// (Encoder.Append) or streams one (Encoder.NewReader), with pooled
// writers so that steady traffic allocates no encoder state.
//
// The proxy decides whether an answer suits compression (proxy/compress.go);
// this package only encodes.
package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Coding is a content coding (RFC 9110 section 8.4.1).
type Coding uint8

// The codings; Identity is none.
const (
	Identity Coding = iota
	Gzip
	Brotli
	Zstd
	numCodings
)

var tokens = [numCodings]string{Identity: "identity", Gzip: "gzip", Brotli: "br", Zstd: "zstd"}

// String is the coding's token, as in Content-Encoding.
func (c Coding) String() string {
	if c >= numCodings {
		return "unknown"
	}
	return tokens[c]
}

// Parse returns the coding of a token ("gzip", "br", "zstd", "identity").
func Parse(token string) (Coding, bool) {
	for c, t := range tokens {
		if t == token {
			return Coding(c), true
		}
	}
	return Identity, false
}

// writer is what the three libraries' stream writers have in common.
type writer interface {
	io.WriteCloser
	Flush() error
	Reset(w io.Writer)
}

// Encoder encodes in one coding at one level. Encoders are shared: For
// returns the same one for the same coding and level, so that their pools
// of writers outlive a configuration reload.
type Encoder struct {
	coding Coding
	level  int
	pool   sync.Pool // of writer
}

var (
	encodersMu sync.Mutex // guards encoders
	encoders   = map[[2]int]*Encoder{}
)

// For returns the shared encoder of coding c at level (gzip 1-9, brotli
// 0-11, zstd 1-22 as klauspost/compress maps it). It panics on Identity.
func For(c Coding, level int) *Encoder {
	if c == Identity || c >= numCodings {
		panic("compress: no encoder for " + c.String())
	}
	encodersMu.Lock()
	defer encodersMu.Unlock()
	k := [2]int{int(c), level}
	if e := encoders[k]; e != nil {
		return e
	}
	e := &Encoder{coding: c, level: level}
	encoders[k] = e
	return e
}

// Coding is the encoder's coding.
func (e *Encoder) Coding() Coding { return e.coding }

// zstdWindow bounds zstd's window: decoders in browsers accept up to
// 8 MiB for Content-Encoding (RFC 8878 section 3.1.1.1.2); a smaller one
// keeps each pooled encoder's memory down.
const zstdWindow = 1 << 20

func (e *Encoder) get(w io.Writer) writer {
	if zw, ok := e.pool.Get().(writer); ok {
		zw.Reset(w)
		return zw
	}
	switch e.coding {
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, e.level)
		if err != nil {
			panic("compress: " + err.Error()) // the level was validated
		}
		return zw
	case Brotli:
		return brotli.NewWriterLevel(w, e.level)
	default:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(e.level)),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic("compress: " + err.Error())
		}
		return zw
	}
}

func (e *Encoder) put(zw writer) {
	zw.Reset(nil) // holds nothing of the last body's destination
	e.pool.Put(zw)
}

// appender is an io.Writer that appends to a slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

var appenders = sync.Pool{New: func() any { return new(appender) }}

// Append appends src, encoded whole, to dst.
func (e *Encoder) Append(dst, src []byte) []byte {
	a := appenders.Get().(*appender)
	a.b = dst
	zw := e.get(a)
	_, _ = zw.Write(src) // an appender does not fail
	_ = zw.Close()
	e.put(zw)
	dst = a.b
	a.b = nil
	appenders.Put(a)
	return dst
}
