package http1

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// SmallBody is the largest body held in memory on its way through: request
// bodies up to this size are read whole (so that a request can be sent again
// on a fresh connection) and response bodies up to it are read whole (so the
// upstream connection returns to its pool at once). Larger ones stream.
const SmallBody = 64 << 10

// pooledConn is what fasthttp's connection pool hands out.
type pooledConn interface {
	Conn() net.Conn
	LastUseTime() time.Time
}

// connPool sends one request over a pooled upstream connection; hostPool is
// the one implementation, generic in fasthttp's unexported connection type.
type connPool interface {
	roundTrip(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool, connect *time.Duration) (body io.ReadCloser, resent int, err error)
}

// hostPool implements connPool on a fasthttp HostClient used as a connection
// pool only: dialing, limits and idle cleanup are fasthttp's; the exchange is
// ours, so that small bodies never allocate a stream, stale keep-alive
// connections are retried, and nothing is retried that should not be. C is
// fasthttp's unexported connection type, inferred from the HostClient's
// methods.
type hostPool[C pooledConn] struct {
	hc      *fasthttp.HostClient
	acquire func(time.Duration, bool) (C, error)
	release func(C)
	close   func(C)
	workers *Workers
	bodies  sync.Pool // of *streamBody[C]
}

func newHostPool[C pooledConn](hc *fasthttp.HostClient, acquire func(time.Duration, bool) (C, error), release, closeConn func(C), w *Workers) *hostPool[C] {
	return &hostPool[C]{hc: hc, acquire: acquire, release: release, close: closeConn, workers: w}
}

// maxStaleRetries bounds the fresh connections tried after stale ones.
const maxStaleRetries = 2

func (p *hostPool[C]) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool, connect *time.Duration) (io.ReadCloser, int, error) {
	req.URI().DisablePathNormalizing = true // forward the path as the client sent it
	resent := 0
	for attempt := 0; ; attempt++ {
		var start time.Time
		if connect != nil {
			start = time.Now()
		}
		cc, err := p.acquire(0, false)
		if connect != nil {
			*connect = time.Since(start)
		}
		if err != nil {
			return nil, resent, err
		}
		reused := !cc.LastUseTime().IsZero()
		if reused && !idempotent && !connAlive(cc.Conn()) {
			// A request that may not be sent twice goes only on a
			// connection the target has not closed in the meantime: a
			// look costs a system call, a lost POST costs more.
			p.close(cc)
			continue
		}
		body, err := p.exchange(cc, req, resp)
		if err == nil {
			return body, resent, nil
		}
		var se *staleError
		if errors.As(err, &se) {
			// A request the target had whole may have been acted on: send
			// it again only if that is harmless, as net/http does: an
			// idempotent method, or a key that asks the target to act on
			// one copy only (looked for here, off the usual path).
			if reused && replayable && (idempotent || !se.written || hasIdempotencyKey(&req.Header)) && attempt < maxStaleRetries {
				// The target closed an idle connection; it has likely closed
				// the others it had (a restart, an idle timeout): drop them
				// and try a fresh one.
				p.hc.CloseIdleConnections()
				resent++
				continue
			}
			err = se.err
		}
		return nil, resent, err
	}
}

// staleError marks a failure before any byte of the response arrived, which
// on a reused connection means the target had closed it while idle.
type staleError struct {
	err     error
	written bool // the request had been written whole
}

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// IsConnGone reports whether err says the peer closed or reset the
// connection.
func IsConnGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, fasthttp.ErrConnectionClosed)
}

// exchange runs one request on cc. It owns cc: it is released, closed, or
// handed to the returned body.
func (p *hostPool[C]) exchange(cc C, req *fasthttp.Request, resp *fasthttp.Response) (io.ReadCloser, error) {
	conn := cc.Conn()
	bw := p.hc.AcquireWriter(conn) // the write timeout is timeoutConn's
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	p.hc.ReleaseWriter(bw)
	if err != nil {
		p.close(cc)
		if IsConnGone(err) {
			return nil, &staleError{err: err}
		}
		return nil, err
	}

	if p.workers.Busy() > 1 {
		// Other requests are in flight: let them run while the target works
		// on this one. Reading at once would mostly find nothing yet, which
		// costs a system call and a trip through the poller; after the
		// others' turn the answer is usually there.
		runtime.Gosched()
	}
	br := p.hc.AcquireReader(conn)
	resp.Header.DisableNormalizing() // relay the target's header names as sent
	if err := ReadResponseHeader(resp, br); err != nil {
		p.hc.ReleaseReader(br)
		p.close(cc)
		if IsConnGone(err) && br.Buffered() == 0 {
			return nil, &staleError{err: err, written: true}
		}
		return nil, err
	}
	closeAfter := resp.Header.ConnectionClose() || req.Header.ConnectionClose()
	if req.Header.IsHead() || !bodyAllowed(resp.StatusCode()) {
		resp.SkipBody = true
		p.done(cc, br, closeAfter)
		return nil, nil
	}
	cl := resp.Header.ContentLength()
	if cl >= 0 && cl <= SmallBody {
		resp.StreamBody = false
		if err := resp.ReadBody(br, 0); err != nil {
			p.hc.ReleaseReader(br)
			p.close(cc)
			return nil, err
		}
		p.done(cc, br, closeAfter)
		return nil, nil
	}
	sb, _ := p.bodies.Get().(*streamBody[C])
	if sb == nil {
		sb = &streamBody[C]{}
	}
	sb.p, sb.cc, sb.br, sb.closeAfter, sb.eof = p, cc, br, closeAfter || cl == -2, false
	sb.tmp.Header.SetContentLength(cl)
	sb.tmp.StreamBody = true
	if err := sb.tmp.ReadBody(br, 0); err != nil {
		sb.eof = false
		_ = sb.Close()
		return nil, err
	}
	sb.stream = sb.tmp.BodyStream()
	return sb, nil
}

// done returns a connection whose response has been read whole.
func (p *hostPool[C]) done(cc C, br *bufio.Reader, closeConn bool) {
	if br.Buffered() > 0 {
		closeConn = true // the target sent more than one response: out of sync
	}
	p.hc.ReleaseReader(br)
	if closeConn {
		p.close(cc)
	} else {
		p.release(cc)
	}
}

// ReadResponseHeader reads the final response header, skipping interim 1xx
// responses other than 101, and refuses a status line that is not
// HTTP/1.0 or HTTP/1.1 with a status within 100-599.
func ReadResponseHeader(resp *fasthttp.Response, br *bufio.Reader) error {
	for i := 0; i < 10; i++ {
		if err := checkStatusLine(br); err != nil {
			return err
		}
		if err := resp.Header.Read(br); err != nil {
			return err
		}
		if s := resp.StatusCode(); s < 100 || s >= 200 || s == fasthttp.StatusSwitchingProtocols {
			resp.Header.SetProtocol(protoHTTP11) // the proxy's own version (RFC 9110 section 6.2)
			return nil
		}
	}
	return errors.New("http1: too many interim responses")
}

var (
	errStatusLine = errors.New("http1: the target's status line is not HTTP/1.0 or HTTP/1.1 with a status within 100-599")
	protoHTTP11   = []byte("HTTP/1.1")
)

// checkStatusLine refuses a target's answer, before fasthttp parses it,
// unless its status line starts with HTTP/1.0 or HTTP/1.1 and a status code
// within 100-599: RFC 9110 section 15 calls others invalid, and fasthttp
// would relay a status 000 as 200 OK. The line is peeked, not consumed.
func checkStatusLine(br *bufio.Reader) error {
	const n = len("HTTP/1.1 200")
	b, err := br.Peek(n)
	if err != nil {
		return err
	}
	if string(b[:7]) != "HTTP/1." || (b[7] != '0' && b[7] != '1') || b[8] != ' ' ||
		b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9' {
		return errStatusLine
	}
	if next, err := br.Peek(n + 1); err == nil && next[n] != ' ' && next[n] != '\r' && next[n] != '\n' {
		return errStatusLine // a fourth digit, or anything else glued to the code
	}
	return nil
}

// bodyAllowed reports whether a response with this status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified
}

// streamBody streams a large response body from a pooled connection, which
// it returns to the pool (or closes, if not fully read) on Close.
type streamBody[C pooledConn] struct {
	p          *hostPool[C]
	cc         C
	br         *bufio.Reader
	tmp        fasthttp.Response // holds fasthttp's body decoder
	stream     io.Reader
	closeAfter bool
	eof        bool
}

func (b *streamBody[C]) Read(p []byte) (int, error) {
	n, err := b.stream.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *streamBody[C]) Close() error {
	_ = b.tmp.CloseBodyStream()
	b.tmp.Reset()
	if b.eof {
		b.p.done(b.cc, b.br, b.closeAfter)
	} else {
		// A body cut short leaves unread bytes on the connection.
		b.p.hc.ReleaseReader(b.br)
		b.p.close(b.cc)
	}
	var zero C
	p := b.p
	b.p, b.cc, b.br, b.stream = nil, zero, nil, nil
	p.bodies.Put(b)
	return nil
}

// hasIdempotencyKey reports an Idempotency-Key (IETF httpapi draft) or
// X-Idempotency-Key header with a value.
func hasIdempotencyKey(h *fasthttp.RequestHeader) bool {
	return len(h.Peek("Idempotency-Key")) > 0 || len(h.Peek("X-Idempotency-Key")) > 0
}

// ClientConfig is how a Client reaches its target.
type ClientConfig struct {
	// Addr is the target's host:port.
	Addr string
	// TLS is the client side of TLS to the target; nil for plain text.
	TLS *tls.Config
	// Connect bounds a dial (and the TLS handshake of an upgrade), and the
	// wait for a free connection when MaxConns are busy (then 503).
	Connect time.Duration
	// Read and Write bound each read and write on a connection (0: none):
	// a target that stops sending for Read is timed out, however long the
	// whole response takes.
	Read, Write time.Duration
	// Idle is how long a connection may wait in the pool (0: fasthttp's
	// default).
	Idle time.Duration
	// MaxConns bounds the connections to the target (0: fasthttp's
	// default).
	MaxConns int
	// Workers, if set, is the server's worker pool: with other requests
	// busy, a round trip lets them run before it reads its answer.
	Workers *Workers
}

// Client sends HTTP/1.1 requests to one target over pooled keep-alive
// connections.
type Client struct {
	conf ClientConfig
	hc   *fasthttp.HostClient // the connection pool
	pool connPool
}

// NewClient returns a client of the target conf describes. Nothing is
// dialed until the first request.
func NewClient(conf ClientConfig) *Client {
	c := &Client{conf: conf}
	c.hc = &fasthttp.HostClient{
		Addr:      conf.Addr,
		IsTLS:     conf.TLS != nil,
		TLSConfig: conf.TLS,
		Dial:      c.dial,
		MaxConns:  conf.MaxConns,
		// A request waits this long for a free connection before 503.
		MaxConnWaitTimeout:  conf.Connect,
		MaxIdleConnDuration: conf.Idle,
		// The HostClient serves as a connection pool only (see hostPool).
		// The read timeout is applied per read by timeoutConn, so that it
		// bounds the wait for each byte (as nginx's proxy_read_timeout does)
		// rather than a whole streamed body.
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  32 << 10,
		ConnPoolStrategy: fasthttp.LIFO,
	}
	hc := c.hc
	c.pool = newHostPool(hc, hc.AcquireConn, hc.ReleaseConn, hc.CloseConn, conf.Workers)
	return c
}

// RoundTrip writes req and reads the response header into resp. A small
// body (up to SmallBody) is read into resp and body is nil; otherwise body
// streams the rest and must be closed, which returns the connection to the
// pool. replayable says req may be sent again after a failure on a stale
// pooled connection (its body is in memory); idempotent says it may be sent
// again even after it was written whole (the target may have acted on it
// before dropping the connection); so may a request with an idempotency key.
// resent counts the times req went again on a fresh connection after the
// target dropped a pooled one.
//
// A failure to connect is a *DialError; IsTimeout and IsConnGone classify
// the others; fasthttp.ErrNoFreeConns says MaxConns were busy for Connect.
// Errors that the request body's reader returned come back wrapped as they
// were, so the caller can tell its own.
func (c *Client) RoundTrip(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool) (body io.ReadCloser, resent int, err error) {
	return c.pool.roundTrip(req, resp, replayable, idempotent, nil)
}

// RoundTripTimed is RoundTrip that also sets *connect to the time the
// exchange waited for its connection: a pooled one at once, a new one
// dialed (and its TLS handshake), or one freed by another request when
// max_conns_per_target were busy. With resent > 0 it is the last wait's.
func (c *Client) RoundTripTimed(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool, connect *time.Duration) (body io.ReadCloser, resent int, err error) {
	return c.pool.roundTrip(req, resp, replayable, idempotent, connect)
}

// Timeouts are the client's read and write timeouts.
func (c *Client) Timeouts() (read, write time.Duration) { return c.conf.Read, c.conf.Write }
