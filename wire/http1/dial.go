package http1

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"
)

// Connecting to a target, the per-read and per-write timeouts of an
// upstream connection, and the classification of errors.

// DialError marks a failure to connect to a target: nothing reached it.
type DialError struct{ Err error }

func (e *DialError) Error() string { return "connect: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// IsDialError reports whether err is, or wraps, a *DialError. (Its target
// escapes only when it is called, on an error: a caller's own errors.As
// would cost every request an allocation.)
func IsDialError(err error) bool {
	var de *DialError
	return err != nil && errors.As(err, &de)
}

// dial connects to the target within the connect timeout. Errors are marked
// as DialError so that the handler answers 502 rather than 504.
func (c *Client) dial(addr string) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, c.conf.Connect)
	if err != nil {
		return nil, &DialError{Err: err}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if c.conf.Read <= 0 && c.conf.Write <= 0 {
		return conn, nil
	}
	return &timeoutConn{Conn: conn, read: c.conf.Read, write: c.conf.Write}, nil
}

// DialUpgrade opens a dedicated connection to the target (TLS done, with
// ALPN http/1.1), for a request that will take the connection over (a
// WebSocket upgrade): an upgraded connection is never pooled.
func (c *Client) DialUpgrade() (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", c.conf.Addr, c.conf.Connect)
	if err != nil {
		return nil, &DialError{Err: err}
	}
	if c.conf.TLS == nil {
		return conn, nil
	}
	conf := c.conf.TLS.Clone()
	if conf.ServerName == "" {
		host, _, _ := net.SplitHostPort(c.conf.Addr)
		conf.ServerName = host
	}
	conf.NextProtos = []string{"http/1.1"}
	tc := tls.Client(conn, conf)
	hctx, cancel := context.WithTimeout(context.Background(), c.conf.Connect)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, &DialError{Err: err}
	}
	return tc, nil
}

// timeoutConn bounds each Read by the read timeout, from the moment the read
// starts: a target that stops sending for that long is timed out, however long
// the whole response takes. Moving a deadline costs a timer update in the
// runtime, so it is moved only when less than nine tenths of the timeout is
// left. A deadline kept that way may fall before the read's own end (up to a
// tenth of the timeout early): when it fires then, the deadline is moved to
// the read's end and the read goes on, so a timeout never fires before its
// time (issue 23: a 10 s read timeout answered 504 after 9.09 s).
type timeoutConn struct {
	net.Conn
	read, write time.Duration
	rdl, wdl    time.Time // the deadlines last set
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	if c.read <= 0 {
		return c.Conn.Read(p)
	}
	start := time.Now()
	if moveDeadline(&c.rdl, start, c.read) {
		if err := c.Conn.SetReadDeadline(c.rdl); err != nil {
			return 0, err
		}
	}
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !IsTimeout(err) || !c.early(&c.rdl, start, c.read, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

// Write bounds each write by the write timeout, the same way.
func (c *timeoutConn) Write(p []byte) (int, error) {
	if c.write <= 0 {
		return c.Conn.Write(p)
	}
	start := time.Now()
	if moveDeadline(&c.wdl, start, c.write) {
		if err := c.Conn.SetWriteDeadline(c.wdl); err != nil {
			return 0, err
		}
	}
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !IsTimeout(err) || !c.early(&c.wdl, start, c.write, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

// early reports whether a deadline that fired came before start+d, the end
// the operation begun at start is owed; if so it moves the deadline there
// (set is SetReadDeadline or SetWriteDeadline), and the operation goes on.
func (c *timeoutConn) early(last *time.Time, start time.Time, d time.Duration, set func(time.Time) error) bool {
	end := start.Add(d)
	if !time.Now().Before(end) {
		return false
	}
	*last = end
	return set(end) == nil
}

// moveDeadline sets *last to now+d and reports true when less than nine
// tenths of d is left of the deadline *last; otherwise the deadline stays
// (moving one costs a runtime timer update) and it reports false.
func moveDeadline(last *time.Time, now time.Time, d time.Duration) bool {
	if last.Sub(now) >= d-d/10 {
		return false
	}
	*last = now.Add(d)
	return true
}

// IsTimeout reports whether err is a timeout: a deadline, or fasthttp's.
func IsTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connAlive reports whether a pooled connection still looks usable: the
// target has neither closed it nor sent anything unasked. It peeks without
// blocking, whatever the connection's read deadline (one idle for longer
// than the read timeout has a deadline long past, on which a raw read fails
// at once without looking); connections it cannot look into (TLS) count as
// alive.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*timeoutConn); ok {
		c = tc.Conn
	}
	t, ok := c.(*net.TCPConn)
	if !ok {
		return true
	}
	rc, err := t.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	_ = rc.Control(func(fd uintptr) {
		// Nothing to read: idle as it should be. Anything else: closed,
		// data nobody asked for, or an error.
		var b [1]byte
		alive = nothingToRead(fd, &b)
	})
	return alive
}
