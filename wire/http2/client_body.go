package http2

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/rampart-proxy/rampart/wire"
)

// requestBody feeds the request body to x/net, noting its end for the
// read timeout and its failure for classify.
//
// x/net reads the body in the goroutine that also watches the request's
// context, so a Read that blocks (a gRPC client that sends nothing for a
// while) would keep a canceled or timed-out exchange from being reset
// until the client sent more. A body that may block is therefore read by a
// pump goroutine, and Read returns as soon as the exchange ends; bodies
// held whole in memory (anything with a Len method: bytes.Reader,
// bytes.Buffer, strings.Reader) are read directly.
type requestBody struct {
	r    io.Reader
	ex   *exchange
	pump bool
	want chan int        // to the pump: read up to n bytes
	got  chan pumpResult // from the pump, buffered so it never blocks

	mu  sync.Mutex // guards buf's return to pumpBufs against a copy out of it
	buf *[]byte    // the pump's, from pumpBufs; read after got hands it over
}

type pumpResult struct {
	n   int
	err error
}

// pumpBuf is the size of the pump's buffer.
const pumpBuf = 32 << 10

var pumpBufs = sync.Pool{New: func() any { b := make([]byte, pumpBuf); return &b }}

func newRequestBody(r io.Reader, ex *exchange) *requestBody {
	b := &requestBody{r: r, ex: ex}
	if _, whole := r.(interface{ Len() int }); !whole {
		b.pump = true
		b.want = make(chan int)
		b.got = make(chan pumpResult, 1)
		go b.run()
	}
	return b
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.ex.ctx.Err() != nil {
		return 0, context.Cause(b.ex.ctx) // the exchange is over: read no more
	}
	var n int
	var err error
	if b.pump {
		n, err = b.pumped(p)
	} else {
		n, err = b.r.Read(p)
	}
	switch {
	case err == io.EOF:
		b.ex.requestSent()
	case err != nil && b.ex.ctx.Err() == nil:
		b.ex.setRequestErr(err)
	}
	return n, err
}

// pumped reads through the pump, returning early when the exchange ends.
func (b *requestBody) pumped(p []byte) (int, error) {
	select {
	case b.want <- len(p):
	case <-b.ex.ctx.Done():
		return 0, context.Cause(b.ex.ctx)
	}
	select {
	case r := <-b.got:
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.buf == nil { // the exchange ended and the pump left meanwhile
			return 0, context.Cause(b.ex.ctx)
		}
		return copy(p, (*b.buf)[:r.n]), r.err
	case <-b.ex.ctx.Done():
		return 0, context.Cause(b.ex.ctx) // the pump finishes its read alone
	}
}

// run is the pump: one read of r per request, until an error or the
// exchange's end (which always comes: the exchange's end cancels its
// context). Its buffer goes back to the pool when no copy out of it can be
// in progress.
func (b *requestBody) run() {
	b.buf = pumpBufs.Get().(*[]byte)
	defer func() {
		b.mu.Lock()
		pumpBufs.Put(b.buf)
		b.buf = nil
		b.mu.Unlock()
	}()
	for {
		var n int
		select {
		case n = <-b.want:
		case <-b.ex.ctx.Done():
			return
		}
		m, err := b.r.Read((*b.buf)[:min(n, pumpBuf)])
		b.got <- pumpResult{m, err}
		if err != nil {
			<-b.ex.ctx.Done() // the reader may still copy out of buf
			return
		}
	}
}

// Close does nothing: the body belongs to the caller.
func (b *requestBody) Close() error { return nil }

// responseBody streams the target's answer. It implements wire.TrailerSource
// and wire.Flusher.
type responseBody struct {
	ex       *exchange
	res      *http.Response
	grpc     bool // the request was gRPC
	flush    bool
	done     bool
	trailers []wire.Field
}

func newResponseBody(ex *exchange, res *http.Response, grpc bool) *responseBody {
	ct := res.Header.Get("Content-Type")
	return &responseBody{
		ex:   ex,
		res:  res,
		grpc: grpc,
		flush: grpc || isGRPCContentType([]byte(ct)) || strings.HasPrefix(ct, "text/event-stream") ||
			res.ContentLength < 0,
	}
}

// Read reads the body as it arrives. A gRPC exchange whose time runs out
// after the header ends with trailers saying DEADLINE_EXCEEDED, as the
// target would have said, rather than a reset.
func (b *responseBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	b.ex.readStart()
	n, err := b.res.Body.Read(p)
	b.ex.readEnd()
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.done = true
		b.trailers = trailerFields(b.res.Trailer)
		return n, io.EOF
	}
	err = b.ex.classify(err)
	if b.grpc && errors.Is(err, ErrTimeout) {
		b.done = true
		b.trailers = StatusFields(DeadlineExceeded, "rampart: the upstream did not answer in time")
		return n, io.EOF
	}
	return n, err
}

// Close ends the exchange; before io.EOF it resets the stream (CANCEL).
func (b *responseBody) Close() error {
	_ = b.res.Body.Close()
	b.ex.end()
	return nil
}

// Trailers returns the trailer fields, once Read has returned io.EOF.
func (b *responseBody) Trailers() []wire.Field { return b.trailers }

// FlushEach reports true for gRPC, server-sent events, and bodies of
// unknown length (a stream, as far as the proxy can tell).
func (b *responseBody) FlushEach() bool { return b.flush }

// trailerFields converts x/net's trailers (canonical names) into fields
// with lower-case names, sorted by name for a stable order.
func trailerFields(t http.Header) []wire.Field {
	if len(t) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []wire.Field
	for _, k := range keys {
		name := []byte(strings.ToLower(k))
		for _, v := range t[k] {
			out = append(out, wire.Field{Name: name, Value: []byte(v)})
		}
	}
	return out
}
