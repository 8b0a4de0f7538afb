// Package wire is the seam between Rampart's request pipeline (package proxy)
// and the protocols requests arrive by (wire/http1, wire/http2).
//
// A wire layer owns its connections: accepting, framing, timeouts, TLS, and
// its protocol's rules. For each request it fills a fasthttp.RequestCtx's
// Request (method, request target, Host, header fields and a body, whole or
// as a stream) and calls the pipeline's Handler with a Stream that describes
// where the request came from. The Handler leaves its answer in ctx.Response:
// status, header fields and a body, whole or as a stream (SetBodyStream), which
// the wire writes out in its protocol's terms and then closes. The pipeline
// never reaches into a connection; everything it may know or ask of one is
// in Stream.
//
// fasthttp's Request and Response are the pipeline's representation on every
// wire because HTTP/1.1, the hot path, parses straight into them without a
// copy; HTTP/2 fills them from its decoded header block.
package wire

import (
	"context"
	"io"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// Protocol is the protocol a request arrived by.
type Protocol uint8

// The protocols.
const (
	HTTP1 Protocol = iota + 1 // HTTP/1.0 or HTTP/1.1
	HTTP2                     // HTTP/2, over TLS (h2) or cleartext (h2c)
)

// String returns the protocol as the access log writes it.
func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2.0"
	}
	return "unknown"
}

// Stream is what the pipeline may know of, and ask of, the connection
// (HTTP/1.1) or stream (HTTP/2) that one request came on. It is valid only
// during the Handler call that received it.
type Stream interface {
	// Peer is the address of the connection's peer (not the client a
	// trusted proxy speaks for: the pipeline decides that).
	Peer() netip.Addr
	// Protocol is the protocol the request arrived by.
	Protocol() Protocol
	// TLS reports whether the connection is TLS.
	TLS() bool
	// ClientSubject is the verified client certificate's subject, or nil
	// (no client certificate, or no client_ca_file).
	ClientSubject() []byte
	// Context ends when the client goes away (its connection closes, or
	// it resets the stream), or when the wire shuts the stream down.
	Context() context.Context
	// Hijack asks the wire to hand the connection over to fn once the
	// response header (a 101) is written: r reads from the client (bytes
	// already buffered first), w writes to it. It reports false when the
	// wire cannot (HTTP/2); the pipeline then answers in other terms.
	Hijack(fn func(c net.Conn, r io.Reader, w io.Writer)) bool
}

// Handler serves one request: ctx.Request in, ctx.Response out.
type Handler interface {
	ServeWire(ctx *fasthttp.RequestCtx, s Stream)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx *fasthttp.RequestCtx, s Stream)

// ServeWire calls f.
func (f HandlerFunc) ServeWire(ctx *fasthttp.RequestCtx, s Stream) { f(ctx, s) }

// Field is one header or trailer field.
type Field struct {
	Name, Value []byte
}

// TrailerSource is implemented by a response body stream that ends with
// trailer fields (gRPC's grpc-status and grpc-message). A wire that can send
// trailers (HTTP/2) asks for them once the stream has returned io.EOF and
// sends them after the body; HTTP/1.1 drops them. The slice is valid until
// the stream is closed.
type TrailerSource interface {
	Trailers() []Field
}

// Flusher is implemented by a response body stream whose every read should
// reach the client at once rather than wait in a buffer (a gRPC stream, a
// server-sent event stream). A wire that buffers writes flushes after each
// read of a stream that reports true.
type Flusher interface {
	FlushEach() bool
}
