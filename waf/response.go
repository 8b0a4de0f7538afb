package waf

import (
	"errors"
	"io"

	"github.com/valyala/fasthttp"
)

// InspectResponse runs the response phases on resp when the policy
// inspects responses. body is the rest of resp's body when it streams, nil
// when resp holds it whole.
//
// It returns true when the response must be replaced by the answer of
// Respond (Verdict.Status is then set, and body has been closed).
// Otherwise it returns the body to relay in body's place, which the caller
// closes: body itself when the engine did not read it (a type it does not
// inspect), else a stream of the bytes the engine read, then the rest of
// body. A body of a type the engine inspects is read up to
// response_body_limit first; a larger one is refused with 502 (reject) or
// inspected in part (partial, and always in detect mode), with an audit
// event either way.
func (v *Verdict) InspectResponse(resp *fasthttp.Response, body io.ReadCloser) (bool, io.ReadCloser) {
	if v == nil || v.tx == nil {
		return false, body
	}
	enterEngine()
	v.inEngine = true
	defer func() {
		if v.inEngine {
			v.inEngine = false
			leaveEngine()
		}
	}()
	tx := v.tx
	for k, val := range resp.Header.All() {
		tx.AddResponseHeader(string(k), string(val))
	}
	var rb *responseBody
	before := v.held
	if tx.ProcessResponseHeaders(resp.StatusCode(), "HTTP/1.1") == nil {
		if tx.IsResponseBodyProcessable() && tx.IsResponseBodyAccessible() && !tx.IsRuleEngineOff() && !v.info.GRPC {
			rb = v.writeResponseBody(resp, body)
		}
		if v.Status == 0 {
			_, _ = tx.ProcessResponseBody()
		}
	}
	v.decide()
	if v.Status == 0 && rb != nil {
		// The relay needs the bytes the engine holds: copy them out before
		// the transaction closes (it keeps a copy only while it works).
		if !rb.copyFrom(tx) {
			v.Status, v.Action = fasthttp.StatusBadGateway, ActionBlocked
		}
	}
	v.finish()
	if v.Status != 0 {
		if rb != nil {
			body = rb.rest
		}
		if body != nil {
			_ = body.Close()
		}
		return true, nil
	}
	if rb == nil {
		return false, body
	}
	// The response's bytes are the relay's now: they go back to the budget
	// when it is closed, after the client has them.
	rb.budget, rb.held = v.p.budget, v.held-before
	v.held = before
	return false, rb
}

// writeResponseBody reads the response body into the engine, at most
// response_body_limit bytes; it returns what to relay (nil when resp holds
// the body, which the engine got a copy of). It sets the verdict's Status
// when the body is refused.
func (v *Verdict) writeResponseBody(resp *fasthttp.Response, body io.ReadCloser) *responseBody {
	p, tx := v.p, v.tx
	lim := p.respLimit
	if body == nil {
		b := resp.Body()
		if int64(len(b)) > lim {
			if !v.cutResponse() {
				return nil
			}
			b = b[:lim]
		}
		if len(b) > 0 {
			if !v.reserve(int64(len(b))) {
				v.overBudget(noteResponseBudget)
				return nil
			}
			_, _, _ = tx.WriteResponseBody(b)
		}
		return nil
	}
	want := int64(-1) // read to learn the length
	if cl := resp.Header.ContentLength(); cl >= 0 {
		if int64(cl) > lim && !v.cutResponse() {
			return &responseBody{rest: body}
		}
		want = min(int64(cl), lim)
	}
	v.inEngine = false
	leaveEngine() // reading from the upstream is not engine work
	n, ended, err := v.readInto(body, tx.WriteResponseBody, lim, want)
	rb := &responseBody{rest: body, n: n}
	if err == nil && !ended && n == lim && want < 0 {
		// Does the body go on past the limit? One more byte says.
		rb.extra, ended, err = peekByte(body)
		if err == nil && !ended && !v.cutResponse() {
			err = errRefused
		}
	}
	enterEngine()
	v.inEngine = true
	switch err {
	case nil:
	case errRefused:
	case errBudget:
		v.overBudget(noteResponseBudget)
	default: // the upstream failed, or the engine dropped bytes
		v.Status, v.Action = fasthttp.StatusBadGateway, ActionBlocked
	}
	rb.ended = ended
	return rb
}

// errRefused is writeResponseBody's mark of a body that cutResponse
// refused.
var errRefused = errors.New("waf: response body over the limit")

// cutResponse records a response body larger than response_body_limit. It
// reports whether the start of it is inspected (partial, detect mode);
// else the response is refused with 502.
func (v *Verdict) cutResponse() bool {
	if v.p.respCut {
		v.note |= noteResponseCut
		return true
	}
	v.note |= noteResponseTooLarge
	v.Status, v.Action = fasthttp.StatusBadGateway, ActionBlocked
	return false
}

// peekByte reads one byte of r: extra holds it when r has more.
func peekByte(r io.Reader) (extra []byte, ended bool, err error) {
	var one [1]byte
	for range 100 { // a reader may return nothing a few times
		n, err := r.Read(one[:])
		if n > 0 {
			return one[:], false, nil
		}
		if err == io.EOF {
			return nil, true, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	return nil, false, io.ErrNoProgress
}

// responseBody relays a response body whose start the engine read: those
// bytes (copied out of the engine), then the rest of the upstream stream.
// Closing it closes the stream and gives its bytes back to the budget.
type responseBody struct {
	buf   []byte        // the bytes read, copied out of the engine
	extra []byte        // a byte read past the limit
	off   int           // how much of buf and extra has been relayed
	n     int64         // how many bytes the engine holds
	rest  io.ReadCloser // the upstream stream
	ended bool          // rest has nothing more
	// budget and held are the reservation the relay holds.
	budget *Budget
	held   int64
}

// copyFrom copies the engine's bytes out of tx; an ended stream is closed
// at once, which frees the upstream connection before the relay.
func (b *responseBody) copyFrom(tx interface{ ResponseBodyReader() (io.Reader, error) }) bool {
	if b.n > 0 {
		r, err := tx.ResponseBodyReader()
		if err != nil {
			return false
		}
		b.buf = make([]byte, b.n, b.n+int64(len(b.extra)))
		if _, err := io.ReadFull(r, b.buf); err != nil {
			return false
		}
	}
	b.buf = append(b.buf, b.extra...)
	b.extra = nil
	if b.ended {
		_ = b.rest.Close()
		b.rest = nil
	}
	return true
}

// Read implements io.Reader.
func (b *responseBody) Read(p []byte) (int, error) {
	if b.off < len(b.buf) {
		n := copy(p, b.buf[b.off:])
		b.off += n
		return n, nil
	}
	if b.rest == nil {
		return 0, io.EOF
	}
	return b.rest.Read(p)
}

// Close closes the upstream stream and gives the budget back.
func (b *responseBody) Close() error {
	var err error
	if b.rest != nil {
		err = b.rest.Close()
		b.rest = nil
	}
	b.budget.release(b.held)
	b.held, b.buf = 0, nil
	return err
}
