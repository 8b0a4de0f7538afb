package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	proxytls "github.com/rampart-proxy/rampart/tls"
)

// Reading a request from the connection, and the answers the server makes
// itself when it cannot.

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
	if cn.served == 0 && cn.tlsConn == nil && cn.s.HandOff != nil && cn.s.preface.Load() {
		if cn.prefaceAhead(br) { // waits at most read_header_timeout (the first wait's)
			return false
		}
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
	} else if cl >= 0 && cl <= SmallBody {
		err = req.ContinueReadBody(br, SmallBody, false)
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
		cn.s.Log.Debug("TLS handshake failed", "listener", cn.s.Name, "client", cn.ip.String(), "error", err.Error())
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
	cn.tlsVersion = cs.Version
	if p := cs.NegotiatedProtocol; p != "" && p != "http/1.1" && cn.s.HandOff != nil {
		cn.handOff = p
		return false
	}
	return true
}

// prefaceAhead reports whether a plain connection's first bytes in br are
// the HTTP/2 preface; it then keeps them in cn.handBuf for HandOff. It waits
// for more bytes only while what has arrived is a beginning of the preface.
func (cn *conn) prefaceAhead(br *bufio.Reader) bool {
	b, _ := br.Peek(min(br.Buffered(), len(Preface)))
	if !bytes.HasPrefix([]byte(Preface), b) {
		return false
	}
	b, err := br.Peek(len(Preface))
	if err != nil || string(b) != Preface {
		return false
	}
	cn.handBuf = append([]byte(nil), b...)
	if n := br.Buffered(); n > len(Preface) {
		more, _ := br.Peek(n)
		cn.handBuf = append(cn.handBuf[:0], more...)
	}
	cn.handOff = "h2c"
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
	case IsTimeout(err):
		// The client had begun a request (the idle wait is elsewhere):
		// a slow or stalled client.
		cn.s.Metrics.TimedOut(timeoutKind)
		cn.answer(bw, fasthttp.StatusRequestTimeout, bodyRequestTimeout)
	default:
		cn.answer(bw, fasthttp.StatusBadRequest, bodyBadRequest)
	}
}

// answer writes a short error response and closes the connection. It is
// counted under the "(none)" route: no route was chosen.
func (cn *conn) answer(bw *bufio.Writer, status int, body []byte) {
	if cn.s.Answered != nil {
		cn.s.Answered(status)
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
	if http11 || resp.BodyStream() == nil || resp.Header.ContentLength() >= 0 || resp.SkipBody {
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
