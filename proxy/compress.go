package proxy

import (
	"bytes"
	"io"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/compress"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/wire/http2"
)

// compressor is a route's compression (compress: true), built from the
// compression section (or its defaults). Encoders and their pools of
// writers are shared by every route and survive reloads (compress.For).
type compressor struct {
	minSize  int
	offered  []compress.Coding
	encoders [4]*compress.Encoder // by compress.Coding
	// exact, prefixes ("text/") and suffixes ("+json") are compression.types
	// in lower case.
	exact, prefixes, suffixes [][]byte
	metrics                   *metrics.CompressMetrics
}

// compressExchange is a request's compression state.
type compressExchange struct {
	buf []byte // a whole body's encoding, before it is copied into the response
}

func (c *compressExchange) reset() {
	if cap(c.buf) > 256<<10 {
		c.buf = nil // an unusually large body: not kept with the pooled exchange
	}
}

func (s *Server) buildCompress(e *edgeBuild, r *route) error {
	if !r.cfg.Compress {
		return nil
	}
	co := e.cfg.Compression
	if co == nil {
		co = &config.Compression{}
		// The same defaults ApplyDefaults gives a compression section.
		(&config.Config{Compression: co}).ApplyDefaults()
	}
	c := &compressor{minSize: int(co.MinSize), metrics: s.metrics.Compress(r.name)}
	levels := map[compress.Coding]int{compress.Gzip: co.GzipLevel, compress.Brotli: co.BrotliLevel, compress.Zstd: co.ZstdLevel}
	for _, name := range co.Encodings {
		k, ok := compress.Parse(name)
		if !ok || k == compress.Identity {
			continue // refused by validation
		}
		c.offered = append(c.offered, k)
		c.encoders[k] = compress.For(k, levels[k])
	}
	for _, t := range co.Types {
		t = strings.ToLower(t)
		switch {
		case strings.HasPrefix(t, "+"):
			c.suffixes = append(c.suffixes, []byte(t))
		case strings.HasSuffix(t, "/*"):
			c.prefixes = append(c.prefixes, []byte(t[:len(t)-1]))
		default:
			c.exact = append(c.exact, []byte(t))
		}
	}
	r.compress = c
	return nil
}

var (
	mediaEventStream = []byte("text/event-stream")
	mediaGRPC        = []byte("application/grpc")
	hdrAcceptEnc     = "Accept-Encoding"
)

// compressible reports whether the media type of a Content-Type value is
// one of the route's types. An event stream never is: compressing it would
// hold events back. Neither is gRPC, which has its own message compression.
func (c *compressor) compressible(ct []byte) bool {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	if len(ct) == 0 || foldPrefix(ct, mediaEventStream) || foldPrefix(ct, mediaGRPC) {
		return false
	}
	for _, t := range c.exact {
		if len(ct) == len(t) && foldPrefix(ct, t) {
			return true
		}
	}
	for _, t := range c.prefixes {
		if foldPrefix(ct, t) {
			return true
		}
	}
	for _, t := range c.suffixes {
		if len(ct) > len(t) && foldPrefix(ct[len(ct)-len(t):], t) {
			return true
		}
	}
	return false
}

// foldPrefix reports whether b starts with the lower-case p, ignoring b's
// ASCII case.
func foldPrefix(b, p []byte) bool {
	if len(b) < len(p) {
		return false
	}
	for i, c := range p {
		d := b[i]
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if d != c {
			return false
		}
	}
	return true
}

// suits reports whether the response may be compressed at all (for any
// client): not for a HEAD, not a 1xx/204/304 or a 206 or any answer with a
// Content-Range, not an answer already encoded or marked no-transform (RFC
// 9110 section 7.7; RFC 9111 section 5.2.2.6), not a gRPC call, only a
// compressible type, and only min_size bytes or more when its length is
// known (size; -1: unknown).
func (c *compressor) suits(req *fasthttp.RequestHeader, h *fasthttp.ResponseHeader, size int) bool {
	status := h.StatusCode()
	switch {
	case req.IsHead(), status < 200, status == fasthttp.StatusNoContent,
		status == fasthttp.StatusNotModified, status == fasthttp.StatusPartialContent:
		return false
	case size >= 0 && size < c.minSize:
		return false
	case len(h.ContentEncoding()) > 0 && !nameIs(h.ContentEncoding(), "identity"):
		return false
	case http2.IsGRPC(req), !c.compressible(h.ContentType()):
		return false
	}
	// The target's field names are relayed as sent (normalizing is off):
	// looked for in any case.
	for k, v := range h.All() {
		if nameIs(k, "Content-Range") || (nameIs(k, "Cache-Control") && hasToken(v, "no-transform")) {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v holds tok (ASCII
// case-insensitive, directives' arguments ignored).
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if i := bytes.IndexByte(item, '='); i >= 0 {
			item = item[:i]
		}
		if nameIs(bytes.TrimSpace(item), tok) {
			return true
		}
	}
	return false
}

// addVary says the answer depends on Accept-Encoding, merged with the Vary
// the answer has: nothing when it names Accept-Encoding or "*" already.
func (x *exchange) addVary(h *fasthttp.ResponseHeader) {
	merged := x.hdr[:0]
	for k, v := range h.All() {
		if !nameIs(k, "Vary") {
			continue
		}
		if hasToken(v, hdrAcceptEnc) || hasToken(v, "*") {
			return
		}
		if len(merged) > 0 {
			merged = append(merged, ", "...)
		}
		merged = append(merged, v...)
	}
	if len(merged) == 0 {
		h.Add("Vary", hdrAcceptEnc)
		return
	}
	x.hdr = append(append(merged, ", "...), hdrAcceptEnc...)
	setFold(h, "Vary", x.hdr) // one field: the target's names, then ours
}

// compressResponse compresses the response when the client asks for it
// and the answer suits, and returns the body to relay in body's place
// (nil: the body is whole in the response). It runs after WAF response
// inspection (which reads the body as the target sent it) and after the
// cache stored the answer unencoded; a cache hit calls it with nil.
func (x *exchange) compressResponse(body io.ReadCloser) io.ReadCloser {
	c, ctx := x.rt.compress, x.ctx
	if c == nil { // the route does not compress (a caller need not check)
		return body
	}
	out := &ctx.Response
	size := out.Header.ContentLength()
	if body == nil {
		size = len(out.Body())
	}
	if !c.suits(&ctx.Request.Header, &out.Header, size) {
		return body
	}
	// The answer would be encoded for some client: a shared cache must
	// key it by Accept-Encoding, whatever this client gets.
	x.addVary(&out.Header)
	k := compress.Negotiate(ctx.Request.Header.Peek(hdrAcceptEnc), c.offered)
	if k == compress.Identity {
		return body
	}
	e := c.encoders[k]
	if body == nil {
		src := out.Body()
		x.compressX.buf = e.Append(x.compressX.buf[:0], src)
		if len(x.compressX.buf) >= len(src) {
			return nil // nothing gained (already compressed data): sent as it is
		}
		c.metrics.Compressed(k, int64(len(src)), int64(len(x.compressX.buf)))
		out.SetBody(x.compressX.buf) // a copy: the buffer stays the exchange's
		x.setEncoded(out, k)
		return nil
	}
	x.setEncoded(out, k)
	out.Header.SetContentLength(-1) // the encoded length is known only at the end
	return e.NewReader(body, c.metrics)
}

var codingNames = [4]string{compress.Gzip: "gzip", compress.Brotli: "br", compress.Zstd: "zstd"}

// setEncoded marks the response encoded with k: Content-Encoding, a strong
// ETag weakened (the encoded bytes differ from the representation it
// names; RFC 9110 section 8.8.3), Accept-Ranges dropped (ranges of the
// encoding are not served).
func (x *exchange) setEncoded(out *fasthttp.Response, k compress.Coding) {
	h := &out.Header
	h.SetContentEncoding(codingNames[k])
	var et []byte
	for k, v := range h.All() {
		if nameIs(k, "ETag") {
			et = v
			break
		}
	}
	if len(et) > 0 && !bytes.HasPrefix(et, weakPrefix) {
		x.hdr = append(append(x.hdr[:0], weakPrefix...), et...)
		setFold(h, "ETag", x.hdr)
	}
	delFold(h, "Accept-Ranges")
}

var weakPrefix = []byte("W/")
