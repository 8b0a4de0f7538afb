package proxy

import (
	"bufio"
	"syscall"
)

// awaiter sends what a bufio.Writer holds and then waits until the socket
// under it is readable, the way an event loop does: it reads only when the
// poller says there is something to read.
//
// Why: writing a request (or an answer) and reading at once mostly finds
// nothing yet, which costs a system call that returns EAGAIN, a wait in the
// poller, and the read again. Go's poller has no wait without a read, and a
// raw read of a socket forgets any readiness reported before it starts; so
// the flush is made from inside the raw read, after that point, and the
// readiness the peer's reply brings cannot be missed. Readiness from data
// that arrived before the flush is forgotten: the wait then lasts until the
// read deadline (see conn.linger for why that is harmless for clients, and
// an upstream sends nothing unasked).
type awaiter struct {
	rc syscall.RawConn
	fn func(fd uintptr) bool // step, bound once
	// after, when set, runs once the flush is done (a deadline to set).
	after func() error
	w     *bufio.Writer
	err   error // the flush's
	began bool  // step has run (in the last flush: the wait happened)
}

func newAwaiter(rc syscall.RawConn, after func() error) *awaiter {
	a := &awaiter{rc: rc, after: after}
	a.fn = a.step
	return a
}

// flush flushes w and waits until the socket is readable. flushErr is the
// flush's; waitErr the wait's: a timeout when the read deadline passed first.
func (a *awaiter) flush(w *bufio.Writer) (flushErr, waitErr error) {
	a.w, a.err, a.began = w, nil, false
	waitErr = a.rc.Read(a.fn)
	flushErr, began := a.err, a.began
	a.w, a.err = nil, nil
	if !began {
		// The raw read failed before it called step (a closed socket, a
		// deadline already past): flush the usual way, and leave the error
		// to the read that follows.
		return w.Flush(), nil
	}
	if flushErr != nil {
		waitErr = nil
	}
	return flushErr, waitErr
}

// step is the raw read's callback: the first call flushes, and asks to wait
// unless that failed; the next comes once the socket is readable (or on a
// spurious wake, which the read that follows copes with).
func (a *awaiter) step(uintptr) bool {
	if a.began {
		return true
	}
	a.began = true
	if a.err = a.w.Flush(); a.err != nil {
		return true
	}
	if a.after != nil {
		if a.err = a.after(); a.err != nil {
			return true
		}
	}
	return false
}
