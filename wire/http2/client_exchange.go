package http2

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	xhttp2 "golang.org/x/net/http2"
)

// The kinds of RoundTrip errors, for errors.Is. An *Error wraps one and
// the cause.
var (
	// ErrConnect: the target could not be reached (dial, TLS handshake,
	// or no h2 by ALPN). Nothing was sent; another target may be tried.
	// HTTP 502; gRPC UNAVAILABLE.
	ErrConnect = errors.New("http2: cannot connect to the target")
	// ErrTimeout: the target was silent for the read timeout, or the
	// grpc-timeout or ctx's deadline passed. HTTP 504; gRPC
	// DEADLINE_EXCEEDED.
	ErrTimeout = errors.New("http2: the target did not answer in time")
	// ErrReset: the target reset the stream, sent GOAWAY, or its
	// connection was lost during the exchange. HTTP 502; gRPC UNAVAILABLE.
	ErrReset = errors.New("http2: the target reset the stream")
	// ErrBadResponse: the target broke the protocol (a malformed header
	// block, too large a header list). HTTP 502; gRPC UNAVAILABLE.
	ErrBadResponse = errors.New("http2: the target sent an invalid response")
	// ErrCanceled: ctx was canceled, the client went away; there is
	// nobody to answer.
	ErrCanceled = errors.New("http2: canceled by the client")
	// ErrRequestBody: reading the request body from the client failed.
	ErrRequestBody = errors.New("http2: reading the request body failed")
	// ErrBadRequest: the request cannot be sent as HTTP/2 (an unparsable
	// request target). HTTP 400; gRPC INTERNAL.
	ErrBadRequest = errors.New("http2: the request cannot be sent")
)

// Error is a RoundTrip or body read failure: one of the Err* kinds and the
// cause. errors.Is matches both.
type Error struct {
	Kind error // one of the Err* values
	Err  error // the cause
}

func (e *Error) Error() string   { return e.Kind.Error() + ": " + e.Err.Error() }
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// connectError marks a dial or handshake failure.
type connectError struct{ err error }

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// The causes an exchange's context is canceled with.
var (
	errReadTimeout = errors.New("the target sent nothing for the read timeout")
	errGRPCTimeout = errors.New("the grpc-timeout passed")
	errEnded       = errors.New("the exchange ended")
)

// exchange is one request's state: its context and the timers that end it.
//
// The read timeout is watched by one lazy timer: it fires at the earliest
// moment the current wait could have lasted the whole timeout and, unless
// the wait did, sets itself for the rest. A wait is the time between the
// request's end and the response header, and each Read of the body; the
// time the pipeline spends writing to the client is no wait.
type exchange struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	read   time.Duration

	mu       sync.Mutex // guards the fields below
	sent     bool       // the request went whole (its body hit EOF, or there was none)
	header   bool       // RoundTrip returned
	reading  bool       // a Read of the response body is in progress
	since    time.Time  // when the current wait began
	armed    bool       // watchdog is set to fire
	watchdog *time.Timer
	deadline *time.Timer // grpc-timeout
	due      time.Time   // when deadline fires; zero without one
	reqErr   error       // the request body's read error
}

func newExchange(parent context.Context, read time.Duration) *exchange {
	ex := &exchange{read: read}
	ex.ctx, ex.cancel = context.WithCancelCause(parent)
	return ex
}

// setDeadline ends the exchange d from now (grpc-timeout).
func (ex *exchange) setDeadline(d time.Duration) {
	ex.due = time.Now().Add(d)
	ex.deadline = time.AfterFunc(d, func() { ex.cancel(errGRPCTimeout) })
}

// requestSent records that the request is whole at the target: the wait
// for the answer begins.
func (ex *exchange) requestSent() {
	ex.mu.Lock()
	if !ex.sent {
		ex.sent = true
		if !ex.header {
			ex.startWaitLocked()
		}
	}
	ex.mu.Unlock()
}

// headerArrived records that RoundTrip returned.
func (ex *exchange) headerArrived() {
	ex.mu.Lock()
	ex.header = true
	ex.mu.Unlock()
}

// readStart and readEnd bracket a Read of the response body.
func (ex *exchange) readStart() {
	if ex.read <= 0 {
		return
	}
	ex.mu.Lock()
	ex.reading = true
	ex.startWaitLocked()
	ex.mu.Unlock()
}

func (ex *exchange) readEnd() {
	if ex.read <= 0 {
		return
	}
	ex.mu.Lock()
	ex.reading = false
	ex.mu.Unlock()
}

// startWaitLocked begins a wait now. The watchdog, when set, fires no
// later than the new wait's end (since only moves forward), so it is set
// only when it is not.
func (ex *exchange) startWaitLocked() {
	if ex.read <= 0 {
		return
	}
	ex.since = time.Now()
	if ex.armed {
		return
	}
	ex.armed = true
	if ex.watchdog == nil {
		ex.watchdog = time.AfterFunc(ex.read, ex.watch)
	} else {
		ex.watchdog.Reset(ex.read)
	}
}

// watch runs when the watchdog fires.
func (ex *exchange) watch() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if !ex.reading && (!ex.sent || ex.header) {
		ex.armed = false // no wait in progress; the next one sets it again
		return
	}
	if left := ex.read - time.Since(ex.since); left > 0 {
		ex.watchdog.Reset(left)
		return
	}
	ex.cancel(errReadTimeout)
}

// setRequestErr records the request body's read error.
func (ex *exchange) setRequestErr(err error) {
	ex.mu.Lock()
	if ex.reqErr == nil {
		ex.reqErr = err
	}
	ex.mu.Unlock()
}

// end stops the timers and releases the context.
func (ex *exchange) end() {
	ex.mu.Lock()
	if ex.watchdog != nil {
		ex.watchdog.Stop()
	}
	ex.armed = true // never set again
	ex.mu.Unlock()
	if ex.deadline != nil {
		ex.deadline.Stop()
	}
	ex.cancel(errEnded)
}

// classify wraps err, from x/net, in an *Error of the right kind.
func (ex *exchange) classify(err error) error {
	if ex.ctx.Err() != nil {
		switch cause := context.Cause(ex.ctx); {
		case cause == errReadTimeout || cause == errGRPCTimeout || errors.Is(cause, context.DeadlineExceeded):
			return &Error{Kind: ErrTimeout, Err: cause}
		case cause != errEnded:
			return &Error{Kind: ErrCanceled, Err: cause}
		}
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return &Error{Kind: ErrConnect, Err: ce.err}
	}
	ex.mu.Lock()
	reqErr := ex.reqErr
	ex.mu.Unlock()
	if reqErr != nil {
		return &Error{Kind: ErrRequestBody, Err: reqErr}
	}
	kind := transportKind(err)
	if kind == ErrReset && !ex.due.IsZero() && !time.Now().Before(ex.due) {
		// The target enforces the same grpc-timeout, from a little later
		// (when the request reached it), and resets the stream when it
		// passes: a reset after the deadline is the deadline, whichever
		// timer fired first.
		kind = ErrTimeout
	}
	return &Error{Kind: kind, Err: err}
}

// transportKind sorts x/net's errors.
func transportKind(err error) error {
	var se xhttp2.StreamError
	var ga xhttp2.GoAwayError
	var ce xhttp2.ConnectionError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		if se.Cause != nil && se.Cause.Error() != "received from peer" { // x/net's errFromPeer is unexported
			return ErrBadResponse // x/net reset the stream over what the target sent
		}
		return ErrReset
	case errors.As(err, &ga):
		return ErrReset
	case errors.As(err, &ce):
		return ErrBadResponse
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		strings.Contains(err.Error(), "connection lost"), strings.Contains(err.Error(), "conn is closed"),
		strings.Contains(err.Error(), "cannot retry err"):
		// x/net's errClientConnLost and errClientConnClosed are unexported,
		// and a refused stream whose body cannot be sent again comes back
		// formatted with %v.
		return ErrReset
	}
	return ErrBadResponse
}
