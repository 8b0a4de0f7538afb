package waf

import (
	"io"
	"sync"
)

// Replay is a streamed request body of which the WAF has read the start:
// it yields those bytes again, then the rest of the stream. The proxy
// forwards it in place of the original stream (Request.SetBodyStream).
type Replay struct {
	buf  []byte    // the bytes read for inspection
	off  int       // how much of buf has been replayed
	rest io.Reader // the unread stream
	err  error     // the stream's error while filling, other than EOF
	pb   *[]byte   // buf's pooled backing array
}

// replayBufs holds buffers for the start of streamed bodies.
var replayBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// maxPooledReplay is the largest buffer kept for reuse: a policy with a
// large body limit must not pin that much memory per idle buffer.
const maxPooledReplay = 1 << 20

// fill reads up to max bytes of r for inspection.
func (r *Replay) fill(src io.Reader, max int64) {
	r.pb = replayBufs.Get().(*[]byte)
	buf := (*r.pb)[:0]
	r.rest = src
	for int64(len(buf)) < max {
		if len(buf) == cap(buf) {
			grow := int64(cap(buf)) * 2
			if grow > max {
				grow = max
			}
			nb := make([]byte, len(buf), grow)
			copy(nb, buf)
			buf = nb
		}
		lim := cap(buf)
		if int64(lim) > max {
			lim = int(max)
		}
		n, err := src.Read(buf[len(buf):lim])
		buf = buf[:len(buf)+n]
		if err != nil {
			if err != io.EOF {
				r.err = err
			}
			r.rest = nil
			break
		}
	}
	r.buf, r.off = buf, 0
}

// Read implements io.Reader.
func (r *Replay) Read(p []byte) (int, error) {
	if r.off < len(r.buf) {
		n := copy(p, r.buf[r.off:])
		r.off += n
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	if r.rest == nil {
		return 0, io.EOF
	}
	return r.rest.Read(p)
}

// Len returns how many read bytes are still to be replayed.
func (r *Replay) Len() int { return len(r.buf) - r.off }

// release returns the buffer to the pool.
func (r *Replay) release() {
	if r.pb == nil {
		return
	}
	if cap(r.buf) <= maxPooledReplay {
		*r.pb = r.buf[:0]
		replayBufs.Put(r.pb)
	}
	*r = Replay{}
}
