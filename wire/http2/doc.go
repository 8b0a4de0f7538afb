// Package http2 is Rampart's HTTP/2 wire layer: it serves HTTP/2 to
// downstream clients, over TLS (ALPN "h2") or cleartext with prior
// knowledge (h2c), and hands each stream to the request pipeline as a
// fasthttp.RequestCtx through wire.Handler.
//
// The framing, flow control, HPACK and the stream state machine are
// golang.org/x/net/http2's Server.ServeConn. This package adds what a proxy
// that translates HTTP/2 into HTTP/1.1 needs on top of it:
//
//   - the translation of each request into fasthttp's types, refusing what
//     x/net lets through but an HTTP/1.1 upstream could read differently
//     (RFC 9113 section 8): a method that is not a token, a :path with a
//     space, a fragment or a non-ASCII byte, "*" on a method other than
//     OPTIONS, a :authority that is not host[:port], te other than
//     "trailers", a field value with leading or trailing white space, a
//     content-length that is not one decimal number or that promises a body
//     the stream does not have, more than one content-type, CONNECT;
//   - the translation of the pipeline's response back, dropping
//     connection-specific fields, streaming the body with trailers
//     (wire.TrailerSource) and per-read flushes (wire.Flusher), and sending
//     a gRPC trailers-only response as one HEADERS frame;
//   - denial-of-service limits x/net lacks, enforced on the frames as they
//     are read (server_conn.go): client RST_STREAM rate (rapid reset), PING
//     and SETTINGS rate, CONTINUATION frames and bytes per header block, a
//     lifetime stream budget per connection (then a graceful GOAWAY), and
//     concurrent streams per client IP across connections; and the
//     listener's body_timeout (each wait for request body bytes) and
//     send_timeout (each write to the client);
//   - the client's writes coalesced (server_write.go): x/net flushes twice
//     per response, and one write now carries what several streams have
//     ready; streams run on the HTTP/1.1 wire's workers (Config.Run);
//   - a graceful Shutdown that sends GOAWAY on every connection and lets the
//     streams in flight finish.
//
// The package also speaks HTTP/2 to upstream targets (client*.go, on
// x/net/http2's Transport: h2c with prior knowledge for http:// targets, h2
// by ALPN for https://), with gRPC's rules (grpc*.go): grpc-timeout,
// trailers relayed, and the proxy's own failures answered as gRPC statuses.
// docs/grpc.md tells that side.
//
// The server is called from the listeners (wire/http1 hands over a TLS
// connection whose ALPN chose "h2", or a cleartext one that began with the
// HTTP/2 preface) through Server.ServeConn. docs/http2.md has the whole
// story, limits and defaults included.
package http2
