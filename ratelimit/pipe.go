package ratelimit

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// pipe carries the Redis store's decisions to one Redis server: every
// decision under way at one moment travels in one script call (gcraScript
// takes many keys), so one write, one read and one script run serve them
// all. go-redis's auto-pipelining batches round trips too, but runs the
// script once per decision (about 6 µs of Redis CPU each) and costs the
// proxy about 9 µs per decision (a context with a timer, command objects,
// and a hold of up to a few milliseconds to gather stragglers, during which
// the proxy idles).
//
// One connection carries everything: Redis answers one connection's
// commands in order. A writer goroutine encodes and sends what the calls
// queued; a reader goroutine parses the replies and wakes their callers.
//
// A call waits at most the timeout: the connection's read deadline is kept
// at the oldest waiting call's start plus the timeout. When it passes, or on
// any other error, every waiting call fails and the connection is closed
// (a reply that comes late would answer the wrong call); the next call
// dials again, and calls arriving meanwhile wait for that one dial.
type pipe struct {
	o        pipeOptions
	ctx      context.Context // ends with Close: dials, and waits for them, stop
	cancel   context.CancelFunc
	callPool sync.Pool   // *pipeCall
	load     atomic.Bool // the server may lack the script: send it whole (EVAL) once

	mu      sync.Mutex    // guards the fields below
	cur     *pipeConn     // nil, or maybe broken: see conn
	dialing chan struct{} // closed when the dial under way ends; nil when none is
	dialErr error         // the last dial's error
	closed  bool
}

// pipeOptions configures a pipe.
type pipeOptions struct {
	addr      string
	timeout   time.Duration // dial, handshake, and each call
	tls       *tls.Config   // nil: plain TCP
	username  string
	password  string
	db        int
	dialer    net.Dialer
	handshake [][]byte // AUTH and SELECT, encoded; built by newPipe
}

// errPipeClosed is returned by calls on a closed pipe.
var errPipeClosed = errors.New("ratelimit: redis client closed")

// errNoScript is a NOSCRIPT reply: the server's script cache lacks the
// script (restarted, or SCRIPT FLUSH).
var errNoScript = errors.New("ratelimit: redis: NOSCRIPT")

func newPipe(o pipeOptions) *pipe {
	if o.password != "" {
		if o.username != "" {
			o.handshake = append(o.handshake, appendCommand(nil, "AUTH", o.username, o.password))
		} else {
			o.handshake = append(o.handshake, appendCommand(nil, "AUTH", o.password))
		}
	}
	if o.db != 0 {
		o.handshake = append(o.handshake, appendCommand(nil, "SELECT", strconv.Itoa(o.db)))
	}
	o.dialer.Timeout = o.timeout
	p := &pipe{o: o}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.callPool.New = func() any { return &pipeCall{done: make(chan struct{}, 1)} }
	return p
}

// pipeCall is one decision and, once done is signalled, its result.
type pipeCall struct {
	key    []byte // the whole Redis key
	policy []byte // the interval and tolerance, encoded as two bulk strings
	now    []byte // the caller's clock in µs, or empty for the server's
	pol    int    // the policy's number in the script call; the writer's

	start time.Time
	done  chan struct{} // capacity 1: the reader never blocks on it
	vals  [2]int64      // the script's pair for this key
	err   error
	// batch is, on the first call of each script call, how many calls it
	// carries (0 on the others); set by the writer under pipeConn.mu.
	batch int
}

// getCall returns a call to fill.
func (p *pipe) getCall() *pipeCall {
	return p.callPool.Get().(*pipeCall)
}

// putCall recycles c; only a call whose reply arrived may be recycled.
func (p *pipe) putCall(c *pipeCall) { p.callPool.Put(c) }

// do sends c and waits for its result: c.vals, or an error (errNoScript
// among them: the next call sends the script itself). A call whose ctx
// ends first returns ctx's error; it must not be recycled then, since the
// reader will still answer it.
func (p *pipe) do(ctx context.Context, c *pipeCall) error {
	pc, err := p.conn()
	if err != nil {
		return err
	}
	c.start = time.Now()
	c.err, c.batch = nil, 0
	if err := pc.send(c); err != nil {
		return err
	}
	if done := ctx.Done(); done != nil {
		select {
		case <-c.done:
		case <-done:
			return ctx.Err()
		}
	} else {
		<-c.done
	}
	return c.err
}

// conn returns a working connection, dialing one when there is none. Calls
// that arrive during a dial wait for it instead of dialing themselves.
func (p *pipe) conn() (*pipeConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errPipeClosed
	}
	if pc := p.cur; pc != nil && !pc.isBroken() {
		p.mu.Unlock()
		return pc, nil
	}
	wait := p.dialing
	if wait == nil {
		wait = make(chan struct{})
		p.dialing = wait
		go p.dial(wait)
	}
	p.mu.Unlock()
	select {
	case <-wait:
	case <-p.ctx.Done():
		return nil, errPipeClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPipeClosed
	}
	if pc := p.cur; pc != nil && !pc.isBroken() {
		return pc, nil
	}
	if p.dialErr != nil {
		return nil, p.dialErr
	}
	return nil, errors.New("ratelimit: redis: connection lost")
}

// dial connects, sends the handshake, starts the connection's goroutines,
// and closes done.
func (p *pipe) dial(done chan struct{}) {
	pc, err := p.connect()
	p.mu.Lock()
	if p.closed && pc != nil {
		pc.fail(errPipeClosed)
		pc = nil
		err = errPipeClosed
	}
	if pc != nil {
		old := p.cur
		p.cur = pc
		if old != nil {
			old.fail(errors.New("ratelimit: redis: connection replaced"))
		}
	}
	p.dialErr = err
	p.dialing = nil
	p.mu.Unlock()
	close(done)
}

func (p *pipe) connect() (*pipeConn, error) {
	deadline := time.Now().Add(p.o.timeout)
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	nc, err := p.o.dialer.DialContext(ctx, "tcp", p.o.addr)
	if err != nil {
		return nil, fmt.Errorf("ratelimit: redis: %w", err)
	}
	// Close ends a handshake under way too.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if p.o.tls != nil {
		cfg := p.o.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName, _, _ = net.SplitHostPort(p.o.addr)
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("ratelimit: redis: tls: %w", err)
		}
		nc = tc
	}
	if len(p.o.handshake) > 0 {
		if err := handshake(nc, p.o.handshake, deadline); err != nil {
			nc.Close()
			return nil, err
		}
	}
	// A new connection may be to a restarted server: its first call
	// carries the script, so it needs no NOSCRIPT round trip.
	p.load.Store(true)
	pc := &pipeConn{p: p, nc: nc, kick: make(chan struct{}, 1), timeout: p.o.timeout}
	go pc.writeLoop()
	go pc.readLoop()
	return pc, nil
}

// handshake sends cmds (AUTH, SELECT) and expects +OK to each.
func handshake(nc net.Conn, cmds [][]byte, deadline time.Time) error {
	_ = nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(bytes.Join(cmds, nil)); err != nil {
		return fmt.Errorf("ratelimit: redis: %w", err)
	}
	var buf []byte
	tmp := make([]byte, 512)
	for n := 0; n < len(cmds); {
		m, err := nc.Read(tmp)
		if err != nil {
			return fmt.Errorf("ratelimit: redis: %w", err)
		}
		buf = append(buf, tmp[:m]...)
		for n < len(cmds) {
			size, perr := replySize(buf)
			if perr != nil {
				return perr
			}
			if size == 0 {
				break // incomplete
			}
			reply := buf[:size]
			buf = buf[size:]
			n++
			if reply[0] == '-' {
				return fmt.Errorf("ratelimit: redis: %s", bytes.TrimSpace(reply[1:]))
			}
			if !bytes.Equal(reply, []byte("+OK\r\n")) {
				return fmt.Errorf("ratelimit: redis: unexpected reply %q", reply)
			}
		}
	}
	return nil
}

// Close fails the calls under way and stops the connection for good.
func (p *pipe) Close() error {
	p.cancel()
	p.mu.Lock()
	p.closed = true
	pc := p.cur
	p.cur = nil
	p.mu.Unlock()
	if pc != nil {
		pc.fail(errPipeClosed)
	}
	return nil
}

// pipeConn is one connection of a pipe.
type pipeConn struct {
	p       *pipe
	nc      net.Conn
	kick    chan struct{} // wakes the writer; capacity 1
	timeout time.Duration

	mu      sync.Mutex  // guards the fields below
	queued  []*pipeCall // calls for the writer to send
	waiting []*pipeCall // calls sent or queued, oldest first, awaiting replies
	head    int         // waiting[head:] are the live entries
	err     error       // non-nil once broken: every later send fails

	// graced is set when a read timed out with a call overdue and got one
	// last short look; the reader's alone.
	graced bool
}

// maxBatch bounds the decisions of one script call (more queued at once go
// out as several calls in one write).
const maxBatch = 128

func (pc *pipeConn) isBroken() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.err != nil
}

// send queues c for the writer.
func (pc *pipeConn) send(c *pipeCall) error {
	pc.mu.Lock()
	if pc.err != nil {
		err := pc.err
		pc.mu.Unlock()
		return err
	}
	if pc.head == len(pc.waiting) {
		// Nothing was awaited: the reader may sit in a read without a
		// deadline. This call's bound starts now.
		pc.waiting, pc.head = pc.waiting[:0], 0
		_ = pc.nc.SetReadDeadline(c.start.Add(pc.timeout))
	}
	if pc.head > 64 && pc.head > len(pc.waiting)/2 {
		// Replies never caught up with the calls for a while: drop the
		// answered entries so the slice does not grow without bound.
		n := copy(pc.waiting, pc.waiting[pc.head:])
		clear(pc.waiting[n:])
		pc.waiting, pc.head = pc.waiting[:n], 0
	}
	pc.waiting = append(pc.waiting, c)
	if len(pc.queued) == 0 {
		select { // under mu: fail closes kick under mu too
		case pc.kick <- struct{}{}:
		default:
		}
	}
	pc.queued = append(pc.queued, c)
	pc.mu.Unlock()
	return nil
}

// writeLoop sends what the calls queued, many calls per script call.
func (pc *pipeConn) writeLoop() {
	var batch []*pipeCall
	var buf []byte
	var pols [][]byte
	for range pc.kick {
		// Let the other goroutines that are ready to run (requests on
		// their way to a decision) queue their calls first: one write, one
		// read and one script run then carry all of them.
		runtime.Gosched()
		pc.mu.Lock()
		if pc.err != nil {
			pc.mu.Unlock()
			return
		}
		batch, pc.queued = pc.queued, batch[:0]
		for i := 0; i < len(batch); i += maxBatch {
			batch[i].batch = min(maxBatch, len(batch)-i)
		}
		pc.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		buf = buf[:0]
		load := pc.p.load.Swap(false)
		for i := 0; i < len(batch); i += maxBatch {
			buf = appendScriptCall(buf, batch[i:i+batch[i].batch], load, &pols)
		}
		clear(batch)
		// A write blocks only when Redis stops reading; the read deadline
		// then fails the calls and fail's Close ends this write.
		if _, err := pc.nc.Write(buf); err != nil {
			pc.fail(fmt.Errorf("ratelimit: redis: %w", err))
			return
		}
	}
}

// appendScriptCall appends one EVALSHA (EVAL when load) of gcraScript
// deciding calls. pols is scratch space, kept by the caller.
func appendScriptCall(dst []byte, calls []*pipeCall, load bool, pols *[][]byte) []byte {
	// The distinct policies, each sent once: calls name theirs by number.
	*pols = (*pols)[:0]
	clocks := false
	for _, c := range calls {
		c.pol = 0
		for i, p := range *pols {
			if bytes.Equal(p, c.policy) {
				c.pol = i + 1
				break
			}
		}
		if c.pol == 0 {
			*pols = append(*pols, c.policy)
			c.pol = len(*pols)
		}
		clocks = clocks || len(c.now) > 0
	}
	perCall := 1
	if clocks {
		perCall = 2
	}
	var num [20]byte
	dst = appendArrayHeader(dst, 3+len(calls)+2+2*len(*pols)+perCall*len(calls))
	if load {
		dst = appendBulk(appendBulk(dst, "EVAL"), gcraLua)
	} else {
		dst = appendBulk(appendBulk(dst, "EVALSHA"), gcraScript.Hash())
	}
	dst = appendBulk(dst, strconv.AppendInt(num[:0], int64(len(calls)), 10))
	for _, c := range calls {
		dst = appendBulk(dst, c.key)
	}
	dst = appendBulk(dst, strconv.AppendInt(num[:0], int64(len(*pols)), 10))
	if clocks {
		dst = appendBulk(dst, "1")
	} else {
		dst = appendBulk(dst, "0")
	}
	for _, p := range *pols {
		dst = append(dst, p...)
	}
	for _, c := range calls {
		dst = appendBulk(dst, strconv.AppendInt(num[:0], int64(c.pol), 10))
		if clocks {
			dst = appendBulk(dst, c.now)
		}
	}
	return dst
}

// readLoop parses replies and hands each to the oldest waiting call.
func (pc *pipeConn) readLoop() {
	buf := make([]byte, 4096)
	start, end := 0, 0
	var calls []*pipeCall
	for {
		if end == len(buf) {
			if start > 0 {
				end = copy(buf, buf[start:end])
				start = 0
			} else {
				buf = append(buf, make([]byte, len(buf))...)
			}
		}
		n, err := pc.nc.Read(buf[end:])
		end += n
		if n > 0 {
			pc.graced = false
		}
		if err != nil {
			if !pc.readTimeout(err) {
				return
			}
			continue
		}
		for start < end {
			size, perr := replySize(buf[start:end])
			if perr != nil {
				pc.fail(perr)
				return
			}
			if size == 0 {
				break
			}
			if !pc.deliver(buf[start:start+size], &calls) {
				pc.fail(errors.New("ratelimit: redis: a reply nobody asked for"))
				return
			}
			start += size
		}
		if start == end {
			start, end = 0, 0
		}
		pc.rearm()
	}
}

// readTimeout handles a read error: true when it was a deadline that no
// call has reached yet (the deadline belonged to calls already answered),
// so reading goes on; otherwise the connection fails.
func (pc *pipeConn) readTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		pc.mu.Lock()
		if pc.err == nil {
			if pc.head == len(pc.waiting) {
				_ = pc.nc.SetReadDeadline(time.Time{})
				pc.mu.Unlock()
				return true
			}
			if oldest := pc.waiting[pc.head].start; time.Since(oldest) < pc.timeout {
				_ = pc.nc.SetReadDeadline(oldest.Add(pc.timeout))
				pc.mu.Unlock()
				return true
			}
			if !pc.graced {
				// A reader that ran late (a busy CPU) finds the deadline
				// passed before it looks at the socket: one more short read
				// takes a reply that is already there.
				pc.graced = true
				_ = pc.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
				pc.mu.Unlock()
				return true
			}
		}
		pc.mu.Unlock()
		pc.fail(fmt.Errorf("ratelimit: redis: no reply within %v", pc.timeout))
		return false
	}
	pc.fail(fmt.Errorf("ratelimit: redis: %w", err))
	return false
}

// rearm moves the read deadline to the oldest waiting call's bound. With
// nothing awaited it stays where it is: a deadline that passes then is
// ignored (readTimeout), which costs less than clearing it each time.
func (pc *pipeConn) rearm() {
	pc.mu.Lock()
	if pc.err == nil && pc.head < len(pc.waiting) {
		_ = pc.nc.SetReadDeadline(pc.waiting[pc.head].start.Add(pc.timeout))
	}
	pc.mu.Unlock()
}

// deliver hands one script call's reply to the calls it carried and wakes
// them; false when the reply does not fit the oldest waiting calls. calls
// is the reader's scratch space: the calls are copied out of waiting under
// mu, since send may move waiting's entries as soon as mu is released.
func (pc *pipeConn) deliver(reply []byte, calls *[]*pipeCall) bool {
	pc.mu.Lock()
	if pc.head == len(pc.waiting) || pc.waiting[pc.head].batch == 0 {
		pc.mu.Unlock()
		return false
	}
	answered := pc.waiting[pc.head : pc.head+pc.waiting[pc.head].batch]
	*calls = append((*calls)[:0], answered...)
	clear(answered)
	pc.head += len(answered)
	pc.mu.Unlock()
	err := parsePairs(reply, *calls)
	if errors.Is(err, errNoScript) {
		pc.p.load.Store(true)
	}
	for _, c := range *calls {
		if err != nil {
			c.err = err
		}
		c.done <- struct{}{}
	}
	clear(*calls)
	return true
}

// fail breaks the connection: every waiting call gets err, later sends
// fail, and the socket is closed (which ends both goroutines).
func (pc *pipeConn) fail(err error) {
	pc.mu.Lock()
	if pc.err != nil {
		pc.mu.Unlock()
		return
	}
	pc.err = err
	calls := pc.waiting[pc.head:]
	pc.waiting, pc.head = nil, 0
	pc.queued = nil
	close(pc.kick)
	pc.mu.Unlock()
	_ = pc.nc.Close()
	for _, c := range calls {
		c.err = err
		c.done <- struct{}{}
	}
}
