package http2

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
	xhttp2 "golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/wire"
)

// The client's fixed settings. Each is a bound an upstream never needs to
// reach in normal work, so none is configurable yet.
const (
	// clientMaxHeaderListSize bounds a response's header block (and its
	// trailers), as RFC 9113 counts it (name + value + 32 per field); it
	// is advertised to the target in SETTINGS_MAX_HEADER_LIST_SIZE. The
	// HTTP/1.1 client reads response headers into a 16 KiB buffer; HTTP/2
	// counts more per field, and gRPC metadata can be larger.
	clientMaxHeaderListSize = 64 << 10
	// clientPingAfter is how long a connection may receive nothing before
	// a PING checks that the target is still there (a target that went
	// away without a FIN would otherwise hold long-lived gRPC streams
	// forever); clientPingTimeout is how long the PING's answer may take
	// before the connection is closed and its streams fail.
	clientPingAfter   = 30 * time.Second
	clientPingTimeout = 15 * time.Second
)

// ClientOptions configure a Client. They are the upstream's settings
// (config.Upstream's timeouts and tls).
type ClientOptions struct {
	// TLS is the client side of TLS to an https:// target, as for the
	// HTTP/1.1 client (verification, SNI, client certificate); "h2" is
	// offered by ALPN in place of its NextProtos, and a target that does
	// not choose h2 fails to connect. An empty ServerName is the target's
	// host. Ignored for http:// targets. Nil: Go's defaults.
	TLS *tls.Config
	// Connect bounds dialing a target and the TLS handshake. Zero: no
	// bound but the operating system's.
	Connect time.Duration
	// Read bounds the wait for the response header once the request has
	// been sent whole, and each read of the response body (the time the
	// target may stay silent, as nginx's grpc_read_timeout). Zero: no
	// bound.
	Read time.Duration
	// Write bounds each write to a connection: a target that takes no
	// bytes for this long has its connection closed. Zero: no bound.
	Write time.Duration
	// Idle closes connections with no stream for this long. Zero: they
	// stay open until the target closes them.
	Idle time.Duration
}

// Client sends requests to one upstream target over HTTP/2: h2c with prior
// knowledge to an http:// target, TLS with h2 chosen by ALPN to an https://
// one. It multiplexes requests as streams over pooled connections: one
// connection carries up to the target's SETTINGS_MAX_CONCURRENT_STREAMS
// streams at once, and a request that finds every connection full opens
// another rather than wait (x/net's StrictMaxConcurrentStreams false: a
// gRPC watch can hold a stream for hours, and calls queued behind a full
// connection would wait for streams that never end). Build one Client per
// target and settings; it is safe for concurrent use.
type Client struct {
	tr       *xhttp2.Transport
	scheme   string // "http" or "https"
	hostPort string
	tlsConf  *tls.Config // nil for h2c
	connect  time.Duration
	read     time.Duration
}

// NewClient returns the client of target, a URL "http://host[:port]" or
// "https://host[:port]" (the port defaults to the scheme's).
func NewClient(target string, opt ClientOptions) (*Client, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("http2: target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return nil, fmt.Errorf("http2: target %q: want http://host[:port] or https://host[:port]", target)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	c := &Client{
		scheme:   u.Scheme,
		hostPort: net.JoinHostPort(u.Hostname(), port),
		connect:  opt.Connect,
		read:     opt.Read,
	}
	if u.Scheme == "https" {
		conf := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		if opt.TLS != nil {
			conf = opt.TLS.Clone()
		}
		if conf.ServerName == "" {
			conf.ServerName = u.Hostname()
		}
		conf.NextProtos = []string{xhttp2.NextProtoTLS}
		c.tlsConf = conf
	}
	c.tr = &xhttp2.Transport{
		AllowHTTP:                  true, // h2c for http:// targets; dial decides
		DialTLSContext:             c.dial,
		DisableCompression:         true, // relay the body as the target encoded it
		MaxHeaderListSize:          clientMaxHeaderListSize,
		StrictMaxConcurrentStreams: false,
		IdleConnTimeout:            opt.Idle,
		ReadIdleTimeout:            clientPingAfter,
		PingTimeout:                clientPingTimeout,
		WriteByteTimeout:           opt.Write,
	}
	return c, nil
}

// Target returns the target's scheme://host:port.
func (c *Client) Target() string { return c.scheme + "://" + c.hostPort }

// CloseIdleConnections closes the connections that carry no stream; busy
// ones are left to finish (a reload that drops the target calls it).
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// dial opens a connection to the target: plain TCP for h2c, TLS with h2
// chosen by ALPN otherwise, both within the connect timeout. Failures are
// connectErrors, which classify as ErrConnect.
func (c *Client) dial(ctx context.Context, network, _ string, _ *tls.Config) (net.Conn, error) {
	if c.connect > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.connect)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, c.hostPort)
	if err != nil {
		return nil, &connectError{err: err}
	}
	if c.tlsConf == nil {
		return conn, nil
	}
	tc := tls.Client(conn, c.tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, &connectError{err: err}
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != xhttp2.NextProtoTLS {
		_ = tc.Close()
		return nil, &connectError{err: fmt.Errorf("the target did not choose h2 by ALPN (chose %q): it does not speak HTTP/2 over TLS", p)}
	}
	return tc, nil
}

// RoundTrip sends req to the target and fills resp's status and header
// fields from the answer; the answer's body streams from the returned
// ReadCloser, which the caller must close (closing it early resets the
// stream). The body implements wire.TrailerSource and wire.Flusher.
//
// ctx is the downstream's (wire.Stream.Context()): when it ends the
// upstream stream is reset (RST_STREAM CANCEL), and a deadline on it bounds
// the whole exchange. req carries the method, request target and header
// fields the proxy forwards (Host becomes :authority); fields that belong
// to an HTTP/1.1 connection are not sent, and te is sent only as
// "trailers". The grpc-timeout header of a gRPC request bounds the
// exchange too (and goes on to the target). body, nil for none, is read until io.EOF while the answer
// streams back (full duplex); a Content-Length in req is sent as such and
// body must hold that many bytes. A body that may block is read from
// another goroutine, so that a blocked Read does not hold up a reset; one
// Read in progress when the exchange ends is left to return by itself, so
// body must stay valid, and its Reads must end, when ctx ends.
//
// Errors wrap one of ErrConnect (nothing was sent: another target may be
// tried), ErrTimeout, ErrReset, ErrBadResponse, ErrCanceled, ErrRequestBody
// or ErrBadRequest, and the cause.
func (c *Client) RoundTrip(ctx context.Context, req *fasthttp.Request, body io.Reader, resp *fasthttp.Response) (io.ReadCloser, error) {
	ex := newExchange(ctx, c.read)
	grpc := IsGRPC(&req.Header)
	if d, ok := ParseTimeout(req.Header.Peek(HeaderTimeout)); ok && grpc {
		ex.setDeadline(d)
	}
	hr, err := c.newRequest(ex, req, body)
	if err != nil {
		ex.end()
		return nil, &Error{Kind: ErrBadRequest, Err: err}
	}
	res, err := c.tr.RoundTrip(hr)
	ex.headerArrived()
	if err != nil {
		err = ex.classify(err)
		ex.end()
		return nil, err
	}
	fillResponse(resp, res)
	return newResponseBody(ex, res, grpc), nil
}

// newRequest builds the net/http request x/net sends.
func (c *Client) newRequest(ex *exchange, req *fasthttp.Request, body io.Reader) (*http.Request, error) {
	u, err := url.ParseRequestURI(string(req.Header.RequestURI()))
	if err != nil {
		return nil, fmt.Errorf("request target: %w", err)
	}
	u.Scheme, u.Host = c.scheme, c.hostPort
	hr, err := http.NewRequestWithContext(ex.ctx, string(req.Header.Method()), "", nil)
	if err != nil {
		return nil, err
	}
	hr.URL = u
	hr.Host = string(req.Header.Host())
	hr.Header = requestHeader(&req.Header)
	if IsGRPC(&req.Header) && hr.Header["Te"] == nil {
		// gRPC servers may refuse a call without it; a wire that
		// dropped it does not speak for the client.
		hr.Header["Te"] = []string{"trailers"}
	}
	if body == nil {
		hr.Body = http.NoBody
		ex.requestSent()
		return hr, nil
	}
	hr.Body = newRequestBody(body, ex)
	if rs, ok := body.(interface {
		io.ReadSeeker
		Len() int
	}); ok {
		// A body held whole can be sent again: x/net does so on a stream
		// the target refused (REFUSED_STREAM) or left unprocessed behind a
		// GOAWAY, as a restarting gRPC server does.
		start, err := rs.Seek(0, io.SeekCurrent)
		if err == nil {
			hr.GetBody = func() (io.ReadCloser, error) {
				if _, err := rs.Seek(start, io.SeekStart); err != nil {
					return nil, err
				}
				return newRequestBody(rs, ex), nil
			}
		}
	}
	hr.ContentLength = -1 // unknown: DATA frames until EOF
	if cl := req.Header.ContentLength(); cl > 0 {
		hr.ContentLength = int64(cl) // sent as content-length; body must match
	}
	return hr, nil
}

// requestHeader copies the fields to forward, leaving out those x/net
// sets from the request (host, content-length) and those that belong to
// one HTTP/1.1 connection (RFC 9113 section 8.2.2), with any field the
// Connection header names.
func requestHeader(h *fasthttp.RequestHeader) http.Header {
	out := make(http.Header, h.Len())
	conn := h.Peek("Connection")
	for k, v := range h.All() {
		switch {
		case wire.EqualFold(k, "host"), wire.EqualFold(k, "content-length"), connectionSpecific(k), listed(conn, k):
			continue
		case wire.EqualFold(k, "te"):
			if hasToken(v, "trailers") {
				out["Te"] = []string{"trailers"}
			}
			continue
		}
		key := http.CanonicalHeaderKey(string(k))
		out[key] = append(out[key], string(v))
	}
	return out
}

// connectionSpecific reports whether name is an HTTP/1.1 connection field
// that HTTP/2 forbids.
func connectionSpecific(name []byte) bool {
	return wire.EqualFold(name, "connection") || wire.EqualFold(name, "keep-alive") ||
		wire.EqualFold(name, "proxy-connection") || wire.EqualFold(name, "transfer-encoding") ||
		wire.EqualFold(name, "upgrade")
}

// fillResponse copies the target's status and header fields into resp.
func fillResponse(resp *fasthttp.Response, res *http.Response) {
	resp.SetStatusCode(res.StatusCode)
	if len(res.Header["Content-Type"]) == 0 {
		resp.Header.SetNoDefaultContentType(true) // none sent, none invented
	}
	for k, vs := range res.Header {
		if k == "Content-Length" || connectionSpecific([]byte(k)) {
			continue
		}
		for _, v := range vs {
			resp.Header.Add(k, v)
		}
	}
	if res.ContentLength >= 0 {
		resp.Header.SetContentLength(int(res.ContentLength))
	} else {
		resp.Header.SetContentLength(-1)
	}
}

// hasToken reports whether the comma-separated list v holds token
// (ignoring case and parameters).
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		item, v, _ = bytes.Cut(v, []byte{','})
		item, _, _ = bytes.Cut(item, []byte{';'})
		if wire.EqualFold(bytes.TrimSpace(item), token) {
			return true
		}
	}
	return false
}

// listed reports whether the Connection header value conn names name.
func listed(conn, name []byte) bool {
	if len(conn) == 0 {
		return false
	}
	return hasToken(conn, string(bytes.ToLower(name)))
}
