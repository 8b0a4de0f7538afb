package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire/http1"
)

// tunnel forwards a WebSocket upgrade. The request goes to the target over a
// fresh connection (an upgraded connection is never pooled); when the target
// answers 101, the client's connection is hijacked and bytes are copied both
// ways until either side closes. Any other answer is relayed as a normal
// response.
func (x *exchange) tunnel(tr *transport) {
	ctx, l, rt, p, idx := x.ctx, x.l, x.rt, x.p, x.ti
	target := p.targetNames[idx]
	up, err := tr.h1.DialUpgrade()
	if err != nil {
		l.srv.log.Warn("websocket upstream connect failed", "request_id", string(x.reqID),
			"route", rt.name, "upstream", p.name, "target", target, "error", err.Error())
		x.finish(fasthttp.StatusBadGateway, bodyBadGateway)
		return
	}
	read, write := tr.h1.Timeouts()
	if write > 0 {
		_ = up.SetWriteDeadline(time.Now().Add(write))
	}
	if _, err := up.Write(ctx.Request.Header.Header()); err != nil {
		_ = up.Close()
		x.finish(fasthttp.StatusBadGateway, bodyBadGateway)
		return
	}
	_ = up.SetWriteDeadline(time.Time{})
	if read > 0 {
		_ = up.SetReadDeadline(time.Now().Add(read))
	}
	br := bufio.NewReaderSize(up, 4<<10)
	resp := &ctx.Response
	resp.Header.DisableNormalizing()
	if err := http1.ReadResponseHeader(resp, br); err != nil {
		_ = up.Close()
		resp.Reset()
		status, body := statusForError(err)
		x.finish(status, body)
		return
	}
	_ = up.SetReadDeadline(time.Time{})
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// Refused upgrade: relay the answer (bounded) and drop the connection.
		err := resp.ReadBody(br, 1<<20)
		_ = up.Close()
		if err != nil {
			resp.Reset()
			x.finish(fasthttp.StatusBadGateway, bodyBadGateway)
			return
		}
		resp.Header.ResetConnectionClose()
		relayHeader(&resp.Header, x.reqID)
		x.logResponse()
		return
	}
	ts := p.balancer.Targets[idx].State
	ts.Acquire()
	srv := l.srv
	hijacked := x.st.Hijack(func(c net.Conn, cr io.Reader, cw io.Writer) {
		defer ts.Release()
		srv.tunnels.run(c, cr, cw, up, br)
	})
	if !hijacked { // the wire cannot hand its connection over (HTTP/2)
		ts.Release()
		_ = up.Close()
		resp.Reset()
		x.finish(fasthttp.StatusBadGateway, bodyBadGateway)
		return
	}
	x.logResponse()
}

// tunnelSet tracks open tunnels so that shutdown can wait for them, then
// close what is left.
type tunnelSet struct {
	mu      sync.Mutex // guards the fields below
	conns   map[net.Conn]struct{}
	closing bool // shutdown has begun: no new tunnel may start
	wg      sync.WaitGroup
}

// run copies between the client c and the target up until either side
// closes. cr and ur read c and up, with the bytes already buffered first;
// cw writes to c (within the listener's send_timeout).
func (ts *tunnelSet) run(c net.Conn, cr io.Reader, cw io.Writer, up net.Conn, ur io.Reader) {
	ts.mu.Lock()
	if ts.closing {
		// fasthttp wrote the 101 before handing over the connection, but
		// shutdown got here first: end the tunnel before it starts.
		ts.mu.Unlock()
		_ = up.Close()
		return
	}
	if ts.conns == nil {
		ts.conns = make(map[net.Conn]struct{})
	}
	ts.conns[c] = struct{}{}
	ts.conns[up] = struct{}{}
	ts.wg.Add(1)
	ts.mu.Unlock()
	defer func() {
		ts.mu.Lock()
		delete(ts.conns, c)
		delete(ts.conns, up)
		ts.mu.Unlock()
		ts.wg.Done()
	}()

	// The server's read and write deadlines were for HTTP; a tunnel lives
	// until one side leaves.
	_ = c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, cr)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(cw, ur)
		done <- struct{}{}
	}()
	// When one direction ends, the peer has closed or failed: end both.
	// An expired deadline wakes the copy still reading the client, whose
	// connection is closed by its owner once this returns.
	<-done
	_ = c.SetDeadline(aLongTimeAgo)
	_ = up.Close()
	<-done
}

// refuseNew makes every later tunnel end before it starts.
func (ts *tunnelSet) refuseNew() {
	ts.mu.Lock()
	ts.closing = true
	ts.mu.Unlock()
}

// wait refuses new tunnels, then blocks until every tunnel has ended or ctx
// is done.
func (ts *tunnelSet) wait(ctx context.Context) {
	ts.refuseNew()
	done := make(chan struct{})
	go func() {
		ts.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// closeAll ends every open tunnel: an expired deadline wakes both copies,
// which then close their connections.
func (ts *tunnelSet) closeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for c := range ts.conns {
		_ = c.SetDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)
