package http1

import (
	"net"
	"os"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// Progress timeouts bound how long a client may stall, not how long it may
// take: body_timeout is the longest wait for the next bytes of a request
// body, send_timeout the longest wait for the client to take bytes of a
// response (nginx's client_body_timeout and send_timeout). A client that
// stops sending its upload, or stops reading a streamed response, would
// otherwise hold its worker and the upstream connection the exchange took
// for as long as it likes, and with max_conns_per_target a few such clients
// starve everyone else. Both act on the socket under TLS, so that a TLS
// record arriving or leaving a byte at a time still counts as progress.

// stallError is what a read or write cut by a progress timeout returns. It
// is a timeout (isTimeout, errors.Is os.ErrDeadlineExceeded), so every
// caller treats it as one; its identity says which timeout it was.
type stallError struct{ msg string }

func (e *stallError) Error() string   { return e.msg }
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }
func (e *stallError) Unwrap() error   { return os.ErrDeadlineExceeded }

var (
	errBodyStalled = &stallError{"http1: the client sent nothing of the request body within body_timeout"}
	errSendStalled = &stallError{"http1: the client took nothing of the response within send_timeout"}
)

// countedAlready is passed to refuse for a body timeout: readRaw counted it.
const countedAlready = -1

// bodyTimeout and sendTimeout are a listener's progress timeouts; a field
// left nil (a Config built in code without ApplyDefaults) takes the default.
func bodyTimeout(lim *config.Limits) time.Duration {
	return lim.BodyTimeout.Or(config.Duration(config.DefaultBodyTimeout)).Std()
}

func sendTimeout(lim *config.Limits) time.Duration {
	return lim.SendTimeout.Or(config.Duration(config.DefaultSendTimeout)).Std()
}

// keepDeadline reports whether the deadline already set, dl, may stay where
// a deadline at want is asked for: it is at most tol earlier. Moving a
// deadline costs a runtime timer update, so a busy connection moves its
// deadline about once per tol, not on every read or write.
func keepDeadline(dl, want time.Time, tol time.Duration) bool {
	return !dl.IsZero() && !dl.After(want) && want.Sub(dl) <= tol
}

// Read reads the client's bytes: request bursts read through it.
func (cn *conn) Read(p []byte) (int, error) {
	if cn.rec != nil {
		return cn.c.Read(p) // crypto/tls reads the socket through rec, hence readRaw
	}
	return cn.readRaw(cn.c, p)
}

// Write writes to the client: responses and tunnels write through it.
func (cn *conn) Write(p []byte) (int, error) {
	if cn.rec != nil {
		return cn.c.Write(p) // crypto/tls writes the socket through rec, hence sendRaw
	}
	return cn.sendRaw(p)
}

// startBody begins the reading of a request body that has not arrived
// whole: each read may wait body_timeout, none beyond read_timeout from now.
func (cn *conn) startBody(lim *config.Limits) {
	cn.inBody = true
	cn.bodyTimeout = bodyTimeout(lim)
	cn.rend = time.Time{}
	rt := lim.ReadTimeout.Std()
	if rt > 0 {
		cn.rend = time.Now().Add(rt)
	}
	if cn.bodyTimeout <= 0 {
		// read_timeout bounds the body, or nothing. Either way no earlier
		// deadline (the header's, the linger's) may stay behind.
		_ = cn.setReadTimeout(rt)
	}
}

// endBody ends the body's reading: the next reads are for the next request
// (linger, the header), which set their own deadlines.
func (cn *conn) endBody() {
	cn.inBody = false
	cn.bodyTimeout = 0
	cn.rend = time.Time{}
}

// readRaw reads from the client's socket c. While a body is read, the read
// deadline follows the reads: body_timeout from the moment each read
// begins (to within a tenth), and never past read_timeout's end.
func (cn *conn) readRaw(c net.Conn, p []byte) (int, error) {
	if !cn.inBody {
		return c.Read(p)
	}
	var want time.Time // this read's own deadline (zero: none of body_timeout's)
	if bt := cn.bodyTimeout; bt > 0 {
		want = time.Now().Add(bt)
		if !cn.rend.IsZero() && cn.rend.Before(want) {
			want = cn.rend
		}
		if !keepDeadline(cn.rdl, want, bt/10) {
			cn.rdl = want
			if err := c.SetReadDeadline(want); err != nil {
				return 0, err
			}
		}
	}
	for {
		n, err := c.Read(p)
		if n == 0 && err != nil && IsTimeout(err) {
			// A deadline kept from an earlier read (up to a tenth early)
			// fired before this read's own: it is moved there and the
			// read waits on, so body_timeout never fires before its time.
			if !want.IsZero() && time.Now().Before(want) && c.SetReadDeadline(want) == nil {
				cn.rdl = want
				continue
			}
			err = cn.bodyTimedOut(err)
		}
		return n, err
	}
}

// bodyTimedOut counts and logs a body read cut by a timeout, and says which:
// errBodyStalled for body_timeout, err itself for read_timeout. The
// connection ends after it; later reads fail at once, uncounted.
func (cn *conn) bodyTimedOut(err error) error {
	s := cn.s
	whole := cn.bodyTimeout <= 0 || !cn.rend.IsZero() && !time.Now().Before(cn.rend)
	limit := cn.bodyTimeout
	cn.endBody()
	if whole {
		s.Metrics.TimedOut(metrics.TimeoutBody)
		s.Log.Info("request body timed out: connection closed", "listener", s.Name, "client", cn.ip.String(),
			"timeout", "read_timeout")
		return err
	}
	s.Metrics.TimedOut(metrics.TimeoutBodyStall)
	s.Log.Info("client stopped sending the request body: connection closed", "listener", s.Name,
		"client", cn.ip.String(), "timeout", "body_timeout", "after", limit.String())
	return errBodyStalled
}

// sendRaw writes to the client's socket through the send timeout, and
// counts and logs a write it cuts.
func (cn *conn) sendRaw(p []byte) (int, error) {
	n, err := cn.send.Write(p)
	if err == errSendStalled {
		s := cn.s
		limit := cn.send.timeout
		cn.send.timeout = 0 // what follows (a TLS close alert) has its own deadline
		s.Metrics.TimedOut(metrics.TimeoutSendStall)
		s.Log.Info("client stopped reading the response: connection closed", "listener", s.Name,
			"client", cn.ip.String(), "timeout", "send_timeout", "after", limit.String())
	}
	return n, err
}

// sendSlices is how many times per send timeout a blocked write looks
// whether the client has taken anything: a write is cut between 1 and
// 1+1/sendSlices times the timeout after the client last took a byte.
const sendSlices = 16

// progressWriter writes to a socket and fails a write only when the peer
// takes no byte for timeout, however long the whole write lasts. A write
// that waits is given deadlines a slice of the timeout apart; each that
// passes with some bytes taken starts the wait anew. A timeout does not
// break a plain socket (crypto/tls, which it would break, sits above this).
type progressWriter struct {
	c       net.Conn      // the socket
	timeout time.Duration // 0: writes wait as long as c's deadline says
	end     time.Time     // a deadline no write may pass (write_timeout); zero: none
	dl      time.Time     // the write deadline last set on c
}

func (w *progressWriter) Write(p []byte) (int, error) {
	if w.timeout <= 0 {
		return w.c.Write(p)
	}
	slice := w.timeout / sendSlices
	now := time.Now()
	last := now // when the client last took something, as far as is known
	written := 0
	for {
		want := now.Add(slice)
		if stall := last.Add(w.timeout); stall.Before(want) {
			want = stall
		}
		if !w.end.IsZero() && w.end.Before(want) {
			want = w.end
		}
		if !keepDeadline(w.dl, want, slice/10) {
			w.dl = want
			if err := w.c.SetWriteDeadline(want); err != nil {
				return written, err
			}
		}
		n, err := w.c.Write(p[written:])
		written += n
		if err == nil || !IsTimeout(err) {
			return written, err
		}
		now = time.Now()
		switch {
		case now.Before(w.dl):
			return written, err // someone else's deadline: shutdown, the end of a tunnel
		case !w.end.IsZero() && !now.Before(w.end):
			return written, err // write_timeout
		case n > 0:
			last = now
		case now.Sub(last) >= w.timeout:
			return written, errSendStalled
		}
	}
}
