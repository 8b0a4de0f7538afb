package proxy

import (
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/wire"
)

// relay streams an upstream response body to the client. fasthttp closes it
// once the body has been written (or the write failed); Close then returns
// the upstream connection, ends the target's in-flight count and writes the
// access log line, so the line carries the bytes really sent and the whole
// duration.
type relay struct {
	body   io.ReadCloser
	route  *metrics.RouteMetrics
	state  *balancer.State
	log    *accessLog
	line   []byte // the access log line's prefix, built by the handler
	start  time.Time
	n      int64
	status int
	// verdict, when not nil, is closed after the body (an HTTP/2
	// upstream's request body may stream until the response ends, replayed
	// from the WAF's verdict).
	verdict *waf.Verdict
	// held, when not nil, is released after the body (heldBody).
	held *heldBody
	// span, when not nil, is the request's server span, ended after the
	// body (trace.go).
	span trace.Span
}

var relayPool = sync.Pool{New: func() any { return &relay{line: make([]byte, 0, 512)} }}

func acquireRelay(log *accessLog, body io.ReadCloser, st *balancer.State, start time.Time, rm *metrics.RouteMetrics) *relay {
	r := relayPool.Get().(*relay)
	r.body, r.state, r.log, r.start, r.n, r.route = body, st, log, start, 0, rm
	r.line = r.line[:0]
	return r
}

// Trailers passes on the upstream body's trailers (gRPC's grpc-status), for
// a wire that sends them (wire.TrailerSource).
func (r *relay) Trailers() []wire.Field {
	if ts, ok := r.body.(wire.TrailerSource); ok {
		return ts.Trailers()
	}
	return nil
}

// FlushEach passes on the upstream body's wish to reach the client read by
// read (wire.Flusher).
func (r *relay) FlushEach() bool {
	f, ok := r.body.(wire.Flusher)
	return ok && f.FlushEach()
}

func (r *relay) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	r.n += int64(n)
	return n, err
}

// Close releases everything the relay holds. It is called exactly once.
func (r *relay) Close() error {
	_ = r.body.Close()
	r.held.release() // after Close, which ends the upstream exchange
	r.state.Release()
	if r.route != nil {
		r.route.Observe(r.status, time.Since(r.start))
	}
	if r.log != nil {
		r.log.writeLine(r.log.appendSuffix(r.line, r.n, time.Since(r.start)))
	}
	if r.verdict != nil {
		r.verdict.Close()
	}
	endSpan(r.span)
	r.body, r.state, r.log, r.route, r.verdict, r.held, r.span = nil, nil, nil, nil, nil, nil, nil
	relayPool.Put(r)
	return nil
}
