package proxy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/wire"
	"github.com/rampart-proxy/rampart/wire/http2"
)

// forwardH2 sends the request to target t of an HTTP/2 pool (protocol:
// http2) and relays its response, streaming both ways at once: the request
// body goes up as it arrives, never read ahead (a gRPC call sends its next
// message only after it read an answer), while the response comes down. The
// upstream stream lives in the client's context (wire.Stream.Context), so a
// client that resets its stream or goes away resets the upstream one.
//
// Retries follow the HTTP/1.1 rules: a connect failure reached nothing and
// tries another target (connect_retries; the body is untouched); an idempotent request whose
// body is held whole may try another after a timeout, a reset, or a
// 502/503/504.
func (x *exchange) forwardH2(t *balancer.Target) {
	ctx, lr, p := x.ctx, x.lr, x.p
	req := &ctx.Request
	var body io.Reader
	var held *heldBody
	replayable := true
	switch {
	case req.IsBodyStream():
		// The stream outlives this call (it is read while the response is
		// relayed, after ServeWire returned): it cannot live in the
		// pooled exchange.
		cb := &clientBody{r: req.BodyStream(), left: int64(lr.limits.MaxBodySize), want: int64(req.Header.ContentLength())}
		if cb.left <= 0 {
			cb.left = math.MaxInt64
		}
		body, replayable = cb, false
		if x.st.Protocol() == wire.HTTP1 || x.verdict != nil && x.verdict.Body != nil {
			// The HTTP/1.1 wire reads (drains) the rest of the body once
			// the response is written, and the WAF's replay of the body
			// ends when its verdict is closed: no read of ours may be in
			// progress then (see heldBody).
			held = &heldBody{r: cb}
			body = held
		}
	case len(req.Body()) > 0:
		// Held whole: a bytes.Reader can be sent again on a refused stream.
		body = bytes.NewReader(req.Body())
	}
	idempotent := isIdempotent(req.Header.Method())
	sctx := x.st.Context()

	out := &ctx.Response
	var tried uint64
	connects, resends := 0, 0 // the retries after a connect failure, and of sent requests
	for {
		x.ti = t.Index
		tried |= balancer.Tried(t.Index)
		c := p.transports[t.Index].h2
		var start time.Time
		if p.latency || x.timed {
			start = time.Now()
		}
		t.State.Acquire()
		x.tryBegin(t.Index) // trace.go
		rbody, err := c.RoundTrip(sctx, req, body, out)
		status := out.StatusCode()
		x.up.record(start, status, err)
		x.traceX.tryEnd(status, err)
		tm := p.targetMetrics[t.Index]
		if err != nil {
			tm.Observe(0)
		} else {
			tm.Observe(status)
		}
		if err != nil && !targetFault(err) {
			// The client failed, went away, or sent too large a body:
			// not the target's fault, and nothing to retry.
			t.State.Release()
			out.Reset()
			held.release()
			x.upstreamError(err)
			return
		}
		p.report(t, err != nil || status >= 500, start)
		connect := err != nil && errors.Is(err, http2.ErrConnect)
		retry := false
		switch {
		case connect:
			retry = connects < p.connectRetries // nothing was sent; the body is untouched
			connects++
		case resends >= p.cfg.Retries:
		case err != nil:
			retry = idempotent && replayable && (errors.Is(err, http2.ErrTimeout) || errors.Is(err, http2.ErrReset))
			resends++
		case status == fasthttp.StatusBadGateway || status == fasthttp.StatusServiceUnavailable ||
			status == fasthttp.StatusGatewayTimeout:
			retry = idempotent && replayable
			resends++
		}
		if retry {
			if next := x.retryElsewhere(t, tried, connect, rbody); next != nil {
				if r, ok := body.(*bytes.Reader); ok {
					_, _ = r.Seek(0, io.SeekStart) // a whole body goes again
				}
				t = next
				continue
			}
		}
		if err != nil {
			t.State.Release()
			out.Reset()
			held.release()
			x.upstreamError(err)
			return
		}
		x.held = held
		x.relay(t, rbody)
		if x.held != nil { // relayed whole: the relay did not take it
			x.held.release()
			x.held = nil
		}
		return
	}
}

// heldBody is a streamed request body on its way to an HTTP/2 upstream
// that must not be read once the response is through: an HTTP/1.1
// client's (the HTTP/1.1 wire then reads the rest of the body itself, to
// reuse the connection, from the same buffer), or one the WAF replays
// (closing the verdict ends the replay). The upstream client reads the
// body on a goroutine of its own while the response is relayed, and a read
// may still wait for the client's bytes when the response has been
// written. release, called when the response is through, waits for a read
// in progress (the client is sending its body: the listener's body_timeout
// bounds the wait) and ends the reads.
type heldBody struct {
	mu   sync.Mutex // held during each Read
	r    io.Reader
	done bool
}

// errBodyReleased is a read of a released body.
var errBodyReleased = errors.New("proxy: the request body was released")

func (b *heldBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errBodyReleased
	}
	return b.r.Read(p)
}

// release waits for a read in progress and refuses reads after it. A nil
// b does nothing.
func (b *heldBody) release() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}
