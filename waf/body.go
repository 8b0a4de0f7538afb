package waf

import (
	"errors"
	"io"
	"sync"

	"github.com/corazawaf/coraza/v3/types"
)

// A body is held for inspection once, in the engine: the adapter reads a
// streamed body from the network in small pieces straight into the
// transaction's body buffer, and the proxy forwards it from there (Replay),
// so nothing holds a second copy. Every byte the engine holds is reserved
// in the policy's Budget before it is read.

// Replay is a streamed request body of which the WAF has read the start
// into its engine: it yields those bytes again from the engine's buffer,
// then the rest of the stream. The proxy forwards it in place of the
// original stream (Request.SetBodyStream). It is valid until the Verdict
// is closed.
type Replay struct {
	head io.Reader // the engine's copy of the bytes read; nil once replayed
	rest io.Reader // the unread stream; nil when it ended
}

// Read implements io.Reader.
func (r *Replay) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.head != nil {
		n, err := r.head.Read(p)
		if n > 0 {
			return n, nil
		}
		if err != nil && err != io.EOF {
			return 0, err
		}
		r.head = nil
	}
	if r.rest == nil {
		return 0, io.EOF
	}
	return r.rest.Read(p)
}

// scratchSize is the piece in which a streamed body is read from the
// network: what the engine's buffer grows by at a time.
const scratchSize = 32 << 10

// budgetStep is how much more of the budget a chunked body, whose length
// is not declared, reserves each time it has used what it reserved.
const budgetStep = 64 << 10

var scratchBufs = sync.Pool{New: func() any { b := make([]byte, scratchSize); return &b }}

// errShortWrite marks an engine that kept fewer bytes than it was given
// without refusing them: forwarding from its buffer would lose bytes.
var errShortWrite = errors.New("waf: the engine kept part of a body chunk")

// bodyWriter is the transaction's body input: WriteRequestBody or
// WriteResponseBody.
type bodyWriter func([]byte) (*types.Interruption, int, error)

// readInto reads src into the engine through write until max bytes were
// read, src ends, the engine interrupts, or the budget refuses more. Every
// byte read is reserved first: all of it up front when want (the declared
// length, at most max) is known, else budgetStep at a time. It returns the
// bytes read, whether src ended (io.EOF), and its error; errBudget when a
// reservation failed, errShortWrite when the engine dropped bytes,
// io.ErrUnexpectedEOF when src ended short of want.
func (v *Verdict) readInto(src io.Reader, write bodyWriter, max, want int64) (total int64, ended bool, err error) {
	var held int64 // reserved for this body
	if want >= 0 {
		if !v.reserve(want) {
			return 0, false, errBudget
		}
		held, max = want, want
	}
	sp := scratchBufs.Get().(*[]byte)
	defer scratchBufs.Put(sp)
	buf := *sp
	for total < max {
		if total == held { // a chunked body used up its reservation
			step := min(budgetStep, max-total)
			if !v.reserve(step) {
				return total, false, errBudget
			}
			held += step
		}
		n, rerr := src.Read(buf[:min(int64(len(buf)), held-total)])
		if n > 0 {
			it, w, werr := write(buf[:n])
			if it != nil {
				return total, false, nil // refused by the engine (a size limit)
			}
			if werr != nil || w != n {
				return total, false, errShortWrite
			}
			total += int64(n)
		}
		if rerr == io.EOF {
			if total < want {
				// fasthttp's request stream ends a body cut short of its
				// Content-Length (the client went away) with a plain
				// io.EOF: never inspect that as the whole body.
				return total, false, io.ErrUnexpectedEOF
			}
			return total, true, nil
		}
		if rerr != nil {
			return total, false, rerr
		}
	}
	return total, false, nil
}

// errBudget is readInto's error when the budget could not hold more.
var errBudget = errors.New("waf: buffer budget exhausted")
