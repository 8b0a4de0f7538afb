package http1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/wire"
)

// conn is one downstream connection. It is small on purpose: it is all an
// idle connection costs besides the socket and a minimal goroutine.
type conn struct {
	s      *Server
	c      net.Conn
	rc     syscall.RawConn // nil when the socket cannot be probed (TLS)
	ip     netip.Addr
	probe  func(uintptr) bool // c.probeFD, bound once
	woken  bool               // the poller reported the socket readable
	probed [1]byte
	result chan bool // the worker's verdict: keep the connection open
	active atomic.Bool
	served uint64    // requests served on the connection
	rdl    time.Time // the read deadline last set (zero: none)
	// send writes to the socket (under TLS, if any), within send_timeout;
	// send.dl is the write deadline last set (zero: none).
	send progressWriter
	// inBody is set while a request body that had not arrived whole is
	// read: each read then waits at most bodyTimeout, and none past rend
	// (read_timeout's end; zero: none). See progress.go.
	inBody      bool
	bodyTimeout time.Duration
	rend        time.Time
	// inPlace is the size of a request body served from the read buffer
	// without a copy; it is consumed after the response.
	inPlace int
	// detached is set when the connection became a tunnel: the tunnel set
	// tracks it from then on, not the listener.
	detached bool
	// hijack, set by a handler, takes the connection over after the
	// response (WebSocket tunnels): r reads the client, w writes to it.
	hijack func(c net.Conn, r io.Reader, w io.Writer)
	// tlsConn is c on a TLS listener; the handshake happens in the first
	// burst. subject is the verified client certificate's subject.
	tlsConn    *tls.Conn
	rec        *recordConn // under tlsConn
	handshaken bool
	tlsVersion uint16 // the handshake's (tls.VersionTLS13, ...)
	subject    []byte
	// trailers holds the trailer section of the burst's chunked request
	// bodies, which nothing reads (see chunkedBody); nil until one comes.
	trailers *fasthttp.Request
	// handOff is the protocol the connection turned out to speak, set by
	// its burst for the connection's goroutine to call Server.HandOff
	// with ("": HTTP/1.1); handBuf holds the bytes read already.
	handOff string
	handBuf []byte
	// handedOff is set, under s.mu, once HandOff has the connection.
	handedOff bool
	// proxied is c, or what c reads from under TLS, on a listener that
	// reads the PROXY protocol (proxyproto.go); nil otherwise.
	proxied *proxiedConn
}

// The conn is the wire.Stream of the requests it carries.
var _ wire.Stream = (*conn)(nil)

// Peer is the connection's peer address, resolved when it was accepted.
func (cn *conn) Peer() netip.Addr { return cn.ip }

// Protocol is HTTP/1.x.
func (cn *conn) Protocol() wire.Protocol { return wire.HTTP1 }

// TLS reports whether the connection is TLS.
func (cn *conn) TLS() bool { return cn.tlsConn != nil }

// TLSVersion is the TLS version the connection negotiated (tls.VersionTLS13,
// ...), 0 without TLS.
func (cn *conn) TLSVersion() uint16 { return cn.tlsVersion }

// ClientSubject is the verified client certificate's subject, or nil.
func (cn *conn) ClientSubject() []byte { return cn.subject }

// Context is context.Background: an HTTP/1.1 request learns that its client
// went away when a read or a write to it fails.
func (cn *conn) Context() context.Context { return context.Background() }

// Hijack hands the connection to fn once the response (a 101) is written.
func (cn *conn) Hijack(fn func(c net.Conn, r io.Reader, w io.Writer)) bool {
	cn.hijack = fn
	return true
}

// serve waits for requests on the connection and hands each burst of them to
// a worker. This goroutine never runs request code, so its stack stays small.
func (cn *conn) serve() {
	defer func() {
		_ = cn.c.Close()
		if !cn.detached {
			cn.s.forget(cn)
		}
	}()
	if cn.proxied != nil && !cn.readProxyHeader() {
		return
	}
	for {
		lim := cn.s.lim.Load()
		timeout := lim.IdleTimeout.Std()
		if cn.served == 0 {
			timeout = lim.ReadHeaderTimeout.Std()
		}
		if !cn.waitReadable(timeout) || cn.s.closing.Load() {
			return
		}
		cn.active.Store(true)
		cn.s.Workers.run(cn)
		keep := <-cn.result
		cn.active.Store(false)
		if cn.handOff != "" {
			cn.handOver()
			return
		}
		if !keep || cn.s.closing.Load() {
			return
		}
	}
}

// handOver gives the connection to Server.HandOff, in this goroutine: the
// connection still counts against the limits until HandOff returns.
func (cn *conn) handOver() {
	s := cn.s
	s.mu.Lock()
	cn.handedOff = true
	s.mu.Unlock()
	if cn.rec != nil {
		cn.rec.cn = nil // HTTP/1.1's progress timeouts are not the new protocol's
	}
	cn.send.timeout = 0
	_ = cn.c.SetDeadline(time.Time{})
	cn.rdl, cn.send.dl, cn.send.end = time.Time{}, time.Time{}, time.Time{}
	buf := cn.handBuf
	cn.handBuf = nil
	s.HandOff(cn.c, cn.handOff, buf, cn.ip)
}

// waitReadable blocks until the client sends something (or closes), or the
// timeout passes. It reads nothing, so an idle connection holds no buffer.
func (cn *conn) waitReadable(timeout time.Duration) bool {
	if err := cn.setReadTimeout(timeout); err != nil {
		return false
	}
	if cn.s.closing.Load() {
		return false // shutdown may have set an expired deadline just before ours
	}
	if cn.rc == nil || cn.proxied != nil && len(cn.proxied.pre) > 0 {
		return true // the worker's read waits instead, or has bytes at hand
	}
	cn.woken = false
	return cn.rc.Read(cn.probe) == nil
}

// setReadTimeout makes reads fail after d (never, for 0). Moving a deadline
// costs a runtime timer update, so one up to a tenth of d later than the
// wanted time is left as it is, never one earlier: a timeout fires between
// 1 and 1.1 times d, never before its time (issue 23: a deadline kept from
// the request before fired read_timeout 2 s after 1.85 s).
func (cn *conn) setReadTimeout(d time.Duration) error {
	if d <= 0 {
		if cn.rdl.IsZero() {
			return nil
		}
		cn.rdl = time.Time{}
		return cn.c.SetReadDeadline(cn.rdl)
	}
	want := time.Now().Add(d)
	if late := cn.rdl.Sub(want); !cn.rdl.IsZero() && late >= 0 && late < d/10 {
		return nil
	}
	cn.rdl = want
	return cn.c.SetReadDeadline(want)
}

// probeFD is called by the runtime poller: first to check for data already
// there, then each time the socket is reported readable.
func (cn *conn) probeFD(fd uintptr) bool {
	if cn.woken {
		return true // readable, or closed: the worker's read will tell
	}
	cn.woken = true
	return !nothingToRead(fd, &cn.probed)
}

// nothingToRead reports whether the socket fd has nothing to read now: a
// peek that neither blocks nor consumes (buf receives the peeked byte). A
// closed socket (0 bytes), data, or an error all count as something.
func nothingToRead(fd uintptr, buf *[1]byte) bool {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN
}

var (
	readerPool sync.Pool
	writerPool sync.Pool
	ctxPool    = sync.Pool{New: func() any { return new(fasthttp.RequestCtx) }}
)

func acquireReader(c io.Reader, size int) *bufio.Reader {
	if v := readerPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		if br.Size() == size {
			br.Reset(c)
			return br
		}
	}
	return bufio.NewReaderSize(c, size)
}

func acquireWriter(c io.Writer) *bufio.Writer {
	if v := writerPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(c)
		return bw
	}
	return bufio.NewWriterSize(c, 8<<10)
}

// maxDrain is how much of a request body the handler left unread is read
// and dropped to keep the connection; beyond it the connection is closed.
const maxDrain = 64 << 10

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

// serveBurst serves the requests the client has sent, until it has to wait
// for more. It reports whether the connection may be kept.
func (cn *conn) serveBurst() (keep bool) {
	s := cn.s
	lim := s.lim.Load() // one burst sees one set of limits
	// Both go through cn, for body_timeout and send_timeout.
	br := acquireReader(cn, readBufferSize(lim.MaxHeaderBytes))
	bw := acquireWriter(cn)
	cn.send.timeout, cn.send.end = sendTimeout(lim), time.Time{}
	ctx := ctxPool.Get().(*fasthttp.RequestCtx)
	ctx.Init2(cn.c, fasthttpLogger{s.Log}, true)
	hijacked := false
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("panic serving a request", "listener", s.Name, "panic", r)
			keep = false
		}
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctxPool.Put(ctx)
		if cn.trailers != nil {
			fasthttp.ReleaseRequest(cn.trailers)
			cn.trailers = nil
		}
		if !hijacked {
			br.Reset(nil)
			readerPool.Put(br)
		}
		bw.Reset(nil)
		writerPool.Put(bw)
	}()

	for {
		if !cn.readRequest(ctx, lim, br, bw) {
			// The answers to the requests before it may still be buffered
			// (a pipelined burst is flushed when the input runs out), and
			// a client that ends its input with blank lines must get them.
			_ = bw.Flush()
			return false
		}
		stream := ctx.Request.BodyStream()
		closeAfter := ctx.Request.Header.ConnectionClose()
		http11 := ctx.Request.Header.IsHTTP11()
		// A HEAD's answer has no body, whatever the handler left (an
		// answer of its own, a stream from an HTTP/2 upstream); read
		// before the handler, which may rewrite the method for upstream.
		head := ctx.Request.Header.IsHead()
		ctx.Response.Header.SetNoDefaultContentType(true)

		s.Handler.ServeWire(ctx, cn)
		cn.served++

		if h := cn.hijack; h != nil {
			cn.hijack = nil
			if err := writeResponse(ctx, bw, http11); err != nil || bw.Flush() != nil {
				return false
			}
			_ = cn.c.SetDeadline(time.Time{})
			cn.rdl, cn.send.dl, cn.send.end = time.Time{}, time.Time{}, time.Time{}
			// The tunnel's writes to the client keep send_timeout: a client
			// that stops reading is cut (nginx does the same). A tunnel
			// with nothing to carry has no timeout.
			cn.endBody()
			hijacked = true
			// A tunnel lives as long as its peers want; the listener's
			// shutdown must not wait for it (the tunnel set ends it).
			cn.detached = true
			s.forget(cn)
			h(cn.c, br, cn) // returns when the tunnel ends
			readerPool.Put(resetReader(br))
			return false
		}
		closeAfter = closeAfter || ctx.Response.ConnectionClose() || s.closing.Load()
		if closeAfter {
			ctx.Response.SetConnectionClose()
		} else if !http11 {
			ctx.Response.Header.Set("Connection", "keep-alive")
		}
		if wt := lim.WriteTimeout.Std(); wt > 0 {
			if cn.send.timeout > 0 {
				cn.send.end = time.Now().Add(wt) // send keeps to it
			} else if moveDeadline(&cn.send.dl, time.Now(), wt) {
				_ = cn.c.SetWriteDeadline(cn.send.dl)
			}
		}
		if head {
			ctx.Response.SkipBody = true
		}
		if err := writeResponse(ctx, bw, http11); err != nil {
			cn.writeFailed(err)
			return false
		}
		if !closeAfter && stream != nil && !drain(stream) {
			closeAfter = true // too much unread body to skip
		}
		cn.endBody()
		if cn.inPlace > 0 { // the body was used where it lay in br
			_, _ = br.Discard(cn.inPlace)
			cn.inPlace = 0
		}
		ctx.Request.Reset()
		ctx.Response.Reset()
		if closeAfter || br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				cn.writeFailed(err)
				return false
			}
			if closeAfter {
				return false
			}
			if cn.tlsHeld(br) {
				continue // a pipelined request that crypto/tls had read
			}
			switch cn.linger(br, lim) {
			case lingerGone:
				return false
			case lingerIdle:
				return true
			}
			continue // the client's next request
		}
		// More bytes are waiting. A whole pipelined request is served
		// before flushing (its answer joins this one); anything less may
		// take a while to complete, and this answer must not wait for it.
		if !headerComplete(br) {
			if err := bw.Flush(); err != nil {
				cn.writeFailed(err)
				return false
			}
		}
	}
}

// writeFailed counts a response cut by write_timeout (send_timeout's cuts
// are counted where they happen: sendRaw).
func (cn *conn) writeFailed(err error) {
	if IsTimeout(err) && !errors.Is(err, errSendStalled) {
		cn.s.Metrics.TimedOut(metrics.TimeoutWrite)
	}
}

// lingerFor is about how long a worker waits on its connection for the
// client's next request (one to two times it: see linger) before it hands
// the connection back to its idle goroutine.
// A busy client's next request usually comes within it and is read at once
// into the burst's buffer: no hand-over between goroutines, no probe of the
// socket, no buffers returned to their pools and taken again. It is short,
// so that a connection going idle holds a worker and its buffers only
// briefly.
const lingerFor = 2 * time.Millisecond

const (
	lingerNext = iota // a request has begun to arrive: it is in br
	lingerIdle        // nothing came: the connection goes back to idle
	lingerGone        // the client closed the connection, or it failed
)

// linger waits about lingerFor for the client's next request. The burst
// ends instead when the server is shutting down (the idle wait sees it) or a
// reload has changed the limits (the next burst takes them up).
func (cn *conn) linger(br *bufio.Reader, lim *config.Limits) int {
	if cn.s.closing.Load() || cn.s.lim.Load() != lim {
		return lingerIdle
	}
	cn.s.Workers.busy.Add(-1) // waiting, not serving
	// The deadline is set twice lingerFor ahead and kept while at least
	// lingerFor of it is left, so that a busy client's requests share one
	// timer update among several: the wait lasts one to two lingerFor. It
	// stays recorded in rdl, which is what the socket has: a later
	// setReadTimeout, even to none, then replaces it.
	now := time.Now()
	if left := cn.rdl.Sub(now); cn.rdl.IsZero() || left < lingerFor || left > 2*lingerFor {
		cn.rdl = now.Add(2 * lingerFor)
		_ = cn.c.SetReadDeadline(cn.rdl)
	}
	_, err := br.Peek(1)
	cn.s.Workers.busy.Add(1)
	switch {
	case err == nil:
		return lingerNext
	case IsTimeout(err):
		return lingerIdle
	}
	return lingerGone
}
