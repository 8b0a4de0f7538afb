package compress

import (
	"io"
	"sync"
)

// Sink is told, when a Reader is closed, how many bytes it read and how
// many it produced (the proxy's metrics). A nil Sink is not told.
type Sink interface {
	Compressed(c Coding, in, out int64)
}

// chunk is how much of the source a Reader reads at once.
const chunk = 32 << 10

// Reader streams its source encoded: each Read reads the source and
// returns what the encoder made of it, so that no body is held whole.
// When a read of the source comes back short of a full chunk (the source
// had no more to give at once: a trickle, a pause), the encoder is
// flushed, so that what arrived reaches the client without waiting for
// more; a full chunk is encoded on without a flush, which keeps the
// encoding of a large fast body as small as a whole one.
//
// A source that fails ends the Reader with its error and without the
// encoding's end, so that the client sees a truncated body rather than a
// complete one. Close closes the source and returns the Reader and its
// encoder to their pools: the Reader may not be used after.
type Reader struct {
	e    *Encoder
	src  io.ReadCloser
	sink Sink
	zw   writer
	out  appender // encoded bytes not yet read
	off  int      // how much of out was read
	in   []byte   // scratch for the source
	err  error    // the end: io.EOF or the source's error
	nIn  int64
	nOut int64
}

var readers = sync.Pool{New: func() any { return &Reader{in: make([]byte, chunk)} }}

// NewReader returns a Reader of src encoded by e, whose Close tells sink.
func (e *Encoder) NewReader(src io.ReadCloser, sink Sink) *Reader {
	r := readers.Get().(*Reader)
	r.e, r.src, r.sink = e, src, sink
	r.zw = e.get(&r.out)
	return r
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		if r.off < len(r.out.b) {
			n := copy(p, r.out.b[r.off:])
			r.off += n
			r.nOut += int64(n)
			return n, nil
		}
		if r.err != nil {
			return 0, r.err
		}
		r.out.b, r.off = r.out.b[:0], 0
		n, err := r.src.Read(r.in)
		r.nIn += int64(n)
		if n > 0 {
			if _, werr := r.zw.Write(r.in[:n]); werr != nil {
				r.err = werr
				continue
			}
		}
		switch {
		case err == io.EOF:
			if cerr := r.zw.Close(); cerr != nil {
				r.err = cerr
			} else {
				r.err = io.EOF
			}
		case err != nil:
			r.err = err
		case n > 0 && n < len(r.in):
			if ferr := r.zw.Flush(); ferr != nil {
				r.err = ferr
			}
		}
	}
}

// Close closes the source and releases the Reader to its pool: call it
// once (a second call at once is harmless, one after the Reader was
// reused is not).
func (r *Reader) Close() error {
	if r.src == nil {
		return nil
	}
	err := r.src.Close()
	if r.sink != nil {
		r.sink.Compressed(r.e.coding, r.nIn, r.nOut)
	}
	r.e.put(r.zw)
	if cap(r.out.b) > 4*chunk {
		r.out.b = nil // an unusual burst: not kept in the pool
	}
	r.e, r.src, r.sink, r.zw = nil, nil, nil, nil
	r.out.b, r.off, r.err, r.nIn, r.nOut = r.out.b[:0], 0, nil, 0, 0
	readers.Put(r)
	return err
}
