package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
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
	proxytls "github.com/rampart-proxy/rampart/tls"
)

// Rampart runs its own HTTP/1.1 connection loop on fasthttp's parsers rather
// than fasthttp.Server, for two reasons an edge proxy cares about:
//
//   - An idle keep-alive connection holds no buffer and no large stack. Its
//     goroutine waits for the socket to become readable without reading (a
//     MSG_PEEK probe, then the runtime poller), so it stays at the smallest
//     stack size; requests are served by a pool of worker goroutines that
//     own the buffers and the deep stacks only while a request is in flight
//     (and for a moment after it, in case the client's next request follows
//     at once: see lingerFor).
//   - Every limit is ours: connections are counted and refused at accept time,
//     and each timeout (header, body, idle, write) is set exactly once.

// connServer serves one listener's connections.
type connServer struct {
	l       *listener
	ln      net.Listener
	lim     atomic.Pointer[config.Limits] // replaced by a reload
	log     *slog.Logger
	metrics *metrics.ListenerMetrics

	open    atomic.Int64 // connections being served
	closing atomic.Bool  // shutdown has begun

	mu    sync.Mutex // guards the fields below
	conns map[*conn]struct{}
	perIP map[netip.Addr]int
	done  chan struct{} // closed when the last connection ends after shutdown
}

// conn is one downstream connection. It is small on purpose: it is all an
// idle connection costs besides the socket and a minimal goroutine.
type conn struct {
	s      *connServer
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
	subject    []byte
	// trailers holds the trailer section of the burst's chunked request
	// bodies, which nothing reads (see chunkedBody); nil until one comes.
	trailers *fasthttp.Request
}

func newConnServer(l *listener, ln net.Listener, lim config.Limits, log *slog.Logger) *connServer {
	s := &connServer{l: l, ln: ln, log: log, conns: make(map[*conn]struct{}), perIP: make(map[netip.Addr]int)}
	s.lim.Store(&lim)
	return s
}

// serve accepts connections until the listener is closed.
func (s *connServer) serve() error {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "listener", s.l.name, "error", err.Error(), "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		cn := s.admit(c)
		if cn == nil {
			_ = c.Close() // over a connection limit: refused before reading anything
			continue
		}
		go cn.serve()
	}
}

// admit registers c, or returns nil when a connection limit refuses it.
func (s *connServer) admit(c net.Conn) *conn {
	ip := netip.IPv4Unspecified()
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if addr, ok := netip.AddrFromSlice(a.IP); ok {
			ip = addr.Unmap()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		s.metrics.Refused(metrics.RefusedShutdown)
		return nil
	}
	lim := s.lim.Load()
	if m := lim.MaxConnections; m > 0 && len(s.conns) >= m {
		s.metrics.Refused(metrics.RefusedMaxConnections)
		return nil
	}
	if m := lim.MaxConnectionsPerIP; m > 0 && s.perIP[ip] >= m {
		s.metrics.Refused(metrics.RefusedMaxConnectionsPerIP)
		return nil
	}
	cn := &conn{s: s, c: c, ip: ip, result: make(chan bool, 1), send: progressWriter{c: c}}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if rc, err := tc.SyscallConn(); err == nil {
			cn.rc = rc
			cn.probe = cn.probeFD
		}
	}
	if lr := s.l.srv.snap.Load().listeners[s.l.name]; lr != nil && lr.tlsMgr != nil {
		// The TCP socket is still what the idle wait probes: a TLS record
		// arriving makes it readable like any request.
		cn.rec = &recordConn{Conn: c, cn: cn}
		cn.tlsConn = tls.Server(cn.rec, s.l.tlsFront)
		cn.c = cn.tlsConn
	}
	s.conns[cn] = struct{}{}
	s.perIP[ip]++
	s.open.Add(1)
	s.metrics.Inc()
	return cn
}

func (s *connServer) forget(cn *conn) {
	s.mu.Lock()
	delete(s.conns, cn)
	if s.perIP[cn.ip]--; s.perIP[cn.ip] <= 0 {
		delete(s.perIP, cn.ip)
	}
	last := len(s.conns) == 0 && s.closing.Load() && s.done != nil
	s.mu.Unlock()
	s.open.Add(-1)
	s.metrics.Dec()
	if last {
		close(s.done)
	}
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
		cn.s.l.srv.workers.run(cn)
		keep := <-cn.result
		cn.active.Store(false)
		if !keep || cn.s.closing.Load() {
			return
		}
	}
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
	if cn.rc == nil {
		return true // the worker's read waits instead
	}
	cn.woken = false
	return cn.rc.Read(cn.probe) == nil
}

// setReadTimeout makes reads fail after d (never, for 0). Moving a deadline
// costs a runtime timer update, so one within a tenth of d of the wanted
// time is left as it is: a timeout then fires between 0.9 and 1.1 times d.
func (cn *conn) setReadTimeout(d time.Duration) error {
	if d <= 0 {
		if cn.rdl.IsZero() {
			return nil
		}
		cn.rdl = time.Time{}
		return cn.c.SetReadDeadline(cn.rdl)
	}
	want := time.Now().Add(d)
	if diff := want.Sub(cn.rdl); !cn.rdl.IsZero() && diff < d/10 && diff > -d/10 {
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

// workerPool runs request bursts on long-lived goroutines, whose stacks
// have grown to what request handling needs. Idle workers wait on a stack
// (the most recently used is reused first, its stack and caches warm); a
// janitor ends those idle for longer than maxIdle.
type workerPool struct {
	mu     sync.Mutex // guards the fields below
	idle   []*worker
	closed bool
	ticks  int64 // the janitor's ticks so far: the clock idle workers are stamped with
	// maxIdle is how many ticks a worker may stay idle.
	maxIdle int64
	stop    chan struct{}
}

type worker struct {
	work chan *conn // nil asks the worker to exit
	last int64      // the janitor tick at which it became idle
}

// janitorTick is the janitor's period: the resolution of maxIdle. Idle
// workers are stamped with the janitor's tick count, not the time, so that
// a burst does not pay for reading the clock.
const janitorTick = time.Second

func newWorkerPool() *workerPool {
	p := &workerPool{maxIdle: int64(10 * time.Second / janitorTick), stop: make(chan struct{})}
	go p.janitor()
	return p
}

// run hands cn to an idle worker, or starts one.
func (p *workerPool) run(cn *conn) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- cn
		return
	}
	p.mu.Unlock()
	w := &worker{work: make(chan *conn, 1)}
	w.work <- cn
	go p.serve(w)
}

// busy counts the request bursts being served, by every listener.
var busy atomic.Int64

func (p *workerPool) serve(w *worker) {
	for cn := range w.work {
		if cn == nil {
			return
		}
		busy.Add(1)
		keep := cn.serveBurst()
		busy.Add(-1)
		cn.result <- keep
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		w.last = p.ticks
		p.idle = append(p.idle, w)
		p.mu.Unlock()
	}
}

// janitor ends workers idle beyond maxIdle, oldest first.
func (p *workerPool) janitor() {
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.ticks++
			cutoff := p.ticks - p.maxIdle
			n := 0
			for n < len(p.idle) && p.idle[n].last < cutoff {
				p.idle[n].work <- nil
				n++
			}
			p.idle = append(p.idle[:0], p.idle[n:]...)
			p.mu.Unlock()
		}
	}
}

// close ends the idle workers and the janitor; busy workers end as their
// connections close.
func (p *workerPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	for _, w := range p.idle {
		w.work <- nil
	}
	p.idle = nil
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
	ctx.Init2(cn.c, fasthttpLogger{s.log}, true)
	hijacked := false
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving a request", "listener", s.l.name, "panic", r)
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
		ctx.Response.Header.SetNoDefaultContentType(true)

		s.l.handle(ctx, cn)
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
	if isTimeout(err) && !errors.Is(err, errSendStalled) {
		cn.s.metrics.TimedOut(metrics.TimeoutWrite)
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
	busy.Add(-1) // waiting, not serving
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
	busy.Add(1)
	switch {
	case err == nil:
		return lingerNext
	case isTimeout(err):
		return lingerIdle
	}
	return lingerGone
}

// readRequest reads a request's header and, per its framing, its body:
// small bodies whole, larger ones as a stream the handler reads.
func (cn *conn) readRequest(ctx *fasthttp.RequestCtx, lim *config.Limits, br *bufio.Reader, bw *bufio.Writer) bool {
	cn.inPlace = 0
	cn.endBody()
	if cn.tlsConn != nil && !cn.handshaken && !cn.handshake(lim) {
		return false
	}
	// The header usually arrives whole in the first read; the header
	// timeout (slowloris) is armed only when it has not.
	if b, err := br.Peek(1); len(b) == 0 {
		cn.refuse(bw, err, cn.served > 0, metrics.TimeoutHeader)
		return false
	}
	if bareLFHeader(br) {
		// RFC 9112 lets a recipient accept a bare LF; a proxy that did
		// would forward framing that an upstream may read otherwise.
		cn.answer(bw, fasthttp.StatusBadRequest, bodyBadRequest)
		return false
	}
	if !headerComplete(br) {
		_ = cn.setReadTimeout(lim.ReadHeaderTimeout.Std())
	}
	req := &ctx.Request
	if err := req.Header.Read(br); err != nil {
		cn.refuse(bw, err, cn.served > 0, metrics.TimeoutHeader)
		return false
	}
	if headerSize(&req.Header) > int(lim.MaxHeaderBytes) {
		cn.answer(bw, fasthttp.StatusRequestHeaderFieldsTooLarge, bodyHeaderTooLarge)
		return false
	}
	if st := checkRequest(&req.Header); st != 0 {
		body := bodyBadRequest
		if st == fasthttp.StatusHTTPVersionNotSupported {
			body = bodyVersion
		}
		cn.answer(bw, st, body)
		return false
	}
	if len(req.Header.PeekTrailerKeys()) > 0 {
		// Request trailers are dropped (chunkedBody), so is the field
		// announcing them; fasthttp would file a field it names, set later
		// by the proxy, with the trailers, out of the WAF's sight.
		req.Header.Del(fasthttp.HeaderTrailer)
	}
	cl := req.Header.ContentLength()
	if cl > br.Buffered() || cl == -1 {
		// The body is still on its way: body_timeout bounds each wait for
		// it, read_timeout the whole of it.
		cn.startBody(lim)
	}
	if max := int(lim.MaxBodySize); max > 0 && cl > max {
		cn.answer(bw, fasthttp.StatusRequestEntityTooLarge, bodyTooLarge)
		return false
	}
	if req.MayContinue() {
		if _, err := bw.Write(continueLine); err != nil || bw.Flush() != nil {
			return false
		}
	}
	var err error
	if cl > 0 && cl <= br.Buffered() && !req.MayContinue() {
		// The whole body is in the read buffer already: use it there.
		b, _ := br.Peek(cl)
		req.SetBodyRaw(b)
		cn.inPlace = cl
	} else if cl >= 0 && cl <= smallBody {
		err = req.ContinueReadBody(br, smallBody, false)
	} else if cl == -1 {
		err = cn.chunkedBody(req, br)
	} else if cl != -2 {
		err = req.ContinueReadBodyStream(br, 8<<10, false)
	}
	if err != nil {
		cn.refuse(bw, err, false, countedAlready)
		return false
	}
	return true
}

// chunkedBody sets req's body to stream the chunked body in br. Request
// trailers are dropped, as nginx does: the stream is fasthttp's, which
// parses the trailer section into the header it was made for; that header
// is cn.trailers', not req's, so no trailer field reaches the request the
// router, the WAF and the upstream see (req's header would file them as
// trailers, which a deleted Trailer field turns into ordinary fields, and
// Write would send them upstream after the body). A trailer field that
// fasthttp forbids (framing, routing, authentication: Content-Length,
// Host, Authorization...) fails the body: 400.
func (cn *conn) chunkedBody(req *fasthttp.Request, br *bufio.Reader) error {
	if cn.trailers == nil {
		cn.trailers = fasthttp.AcquireRequest()
	} else {
		cn.trailers.Reset() // the last body was read or drained: it is done with
	}
	cn.trailers.Header.SetContentLength(-1)
	if err := cn.trailers.ContinueReadBodyStream(br, 8<<10, false); err != nil {
		return err
	}
	req.SetBodyStream(cn.trailers.BodyStream(), -1)
	return nil
}

// handshake completes the TLS handshake within the header timeout. An ACME
// TLS-ALPN-01 validation ends with the handshake: it carries no request.
func (cn *conn) handshake(lim *config.Limits) bool {
	d := lim.ReadHeaderTimeout.Std()
	if d <= 0 {
		d = config.DefaultReadHeaderTimeout
	}
	_ = cn.c.SetDeadline(time.Now().Add(d))
	ctx, cancel := context.WithTimeout(context.Background(), d)
	err := cn.tlsConn.HandshakeContext(ctx)
	cancel()
	// The handshake's writes may have set their own deadline (send): none
	// is left, and none is recorded.
	_ = cn.c.SetDeadline(time.Time{})
	cn.rdl, cn.send.dl = time.Time{}, time.Time{}
	if err != nil {
		cn.s.log.Debug("TLS handshake failed", "listener", cn.s.l.name, "client", cn.ip.String(), "error", err.Error())
		return false
	}
	cs := cn.tlsConn.ConnectionState()
	if cs.NegotiatedProtocol == proxytls.ALPNChallenge {
		return false
	}
	if subj, ok := proxytls.ClientSubject(&cs); ok {
		cn.subject = []byte(subj)
	}
	cn.handshaken = true
	return true
}

// minReadBuffer is the smallest read buffer of a request burst: a request
// of this size, headers and body, is read with one system call. The buffer
// is held only while a request is being served.
const minReadBuffer = 32 << 10

func readBufferSize(maxHeader config.Size) int {
	return max(int(maxHeader), minReadBuffer)
}

// headerSize is the size of a parsed request header, for max_header_bytes
// (the read buffer may be larger than that limit).
func headerSize(h *fasthttp.RequestHeader) int {
	return len(h.Method()) + len(h.RequestURI()) + len(h.Protocol()) + len(h.RawHeaders()) + 4
}

// bareLFHeader reports whether the header buffered in br ends a line with
// a bare LF before its end (a header still arriving is judged on what has
// arrived).
func bareLFHeader(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for i, c := range b {
		if c != '\n' {
			continue
		}
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		if i >= 3 && b[i-3] == '\r' && b[i-2] == '\n' {
			return false // the blank line: the header ended well
		}
	}
	return false
}

// headerComplete reports whether br holds a whole request header.
func headerComplete(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
)

// refuse answers a request that could not be read. Nothing is sent when
// the client simply went away. A timeout is counted as timeoutKind
// (countedAlready: not here).
func (cn *conn) refuse(bw *bufio.Writer, err error, idle bool, timeoutKind int) {
	var sizeErr *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF) && idle,
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
	case errors.As(err, &sizeErr):
		cn.answer(bw, fasthttp.StatusRequestHeaderFieldsTooLarge, bodyHeaderTooLarge)
	case isTimeout(err):
		// The client had begun a request (the idle wait is elsewhere):
		// a slow or stalled client.
		cn.s.metrics.TimedOut(timeoutKind)
		cn.answer(bw, fasthttp.StatusRequestTimeout, bodyRequestTimeout)
	default:
		cn.answer(bw, fasthttp.StatusBadRequest, bodyBadRequest)
	}
}

// answer writes a short error response and closes the connection. It is
// counted under the "(none)" route: no route was chosen.
func (cn *conn) answer(bw *bufio.Writer, status int, body []byte) {
	if m := cn.s.l.srv.metrics; m != nil {
		cn.s.l.srv.snap.Load().noRoute.Observe(status, 0)
	}
	var resp fasthttp.Response
	resp.SetStatusCode(status)
	resp.Header.SetContentType("text/plain; charset=utf-8")
	resp.SetConnectionClose()
	resp.SetBodyRaw(body)
	cn.send.timeout = 0 // the connection ends: one second, whether the client reads or not
	cn.send.dl = time.Now().Add(time.Second)
	_ = cn.c.SetWriteDeadline(cn.send.dl)
	if resp.Write(bw) == nil {
		_ = bw.Flush()
	}
}

// writeResponse writes ctx's response. An HTTP/1.0 client cannot read a
// chunked body, so a body of unknown length goes to it unframed, ended by
// closing the connection.
func writeResponse(ctx *fasthttp.RequestCtx, bw *bufio.Writer, http11 bool) error {
	resp := &ctx.Response
	if http11 || resp.BodyStream() == nil || resp.Header.ContentLength() >= 0 {
		return resp.Write(bw)
	}
	resp.SetConnectionClose()
	resp.Header.SetContentLength(-2)
	if err := resp.Header.Write(bw); err != nil {
		return err
	}
	_, err := io.Copy(bw, resp.BodyStream())
	_ = resp.CloseBodyStream()
	return err
}

// drain reads what the handler left of a streamed request body. It reports
// whether the body ended within maxDrain bytes.
func drain(stream io.Reader) bool {
	n, err := io.CopyN(io.Discard, stream, maxDrain+1)
	return n <= maxDrain && (err == nil || errors.Is(err, io.EOF))
}

func resetReader(br *bufio.Reader) *bufio.Reader {
	br.Reset(nil)
	return br
}

// shutdown stops accepting, wakes idle connections so they close, lets
// active ones finish their request, and closes what is left when ctx ends.
func (s *connServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.done == nil {
		s.done = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.done)
		}
	}
	for cn := range s.conns {
		if !cn.active.Load() {
			_ = cn.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	done := s.done
	s.mu.Unlock()
	err := s.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for cn := range s.conns {
			_ = cn.c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
