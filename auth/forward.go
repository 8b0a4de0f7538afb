package auth

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// MaxForwardBody bounds the body of an authentication service's answer
// relayed to the client; a larger one counts as a failure of the service.
const MaxForwardBody = 64 << 10

// ForwardOptions configure a Forward client.
type ForwardOptions struct {
	// URL is the service's endpoint (http or https).
	URL string
	// Timeout bounds a whole exchange with the service.
	Timeout time.Duration
	// MaxConns bounds the connections to the service.
	MaxConns int
	// SendHeaders are the client's header fields passed on.
	SendHeaders []string
}

// Forward asks an authentication service about requests (the Traefik
// forwardAuth, oauth2-proxy and Authelia pattern), over a pool of
// keep-alive connections.
type Forward struct {
	hc      *fasthttp.HostClient
	uri     []byte // the request target sent: the URL's path and query
	host    []byte // the Host sent: the URL's host
	timeout time.Duration
	send    [][]byte
}

// NewForward returns a client of o.URL. Nothing is dialed until the first
// request.
func NewForward(o ForwardOptions) (*Forward, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: forward: url %q must be http or https with a host", o.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	f := &Forward{uri: []byte(u.RequestURI()), host: []byte(u.Host), timeout: o.Timeout}
	for _, h := range o.SendHeaders {
		f.send = append(f.send, []byte(h))
	}
	f.hc = &fasthttp.HostClient{
		Addr:                addr,
		IsTLS:               u.Scheme == "https",
		MaxConns:            o.MaxConns,
		MaxConnWaitTimeout:  o.Timeout,
		ReadTimeout:         o.Timeout,
		WriteTimeout:        o.Timeout,
		MaxResponseBodySize: MaxForwardBody,
		MaxIdleConnDuration: 30 * time.Second,
		// A service's answer must not wait on anything but the service.
		NoDefaultUserAgentHeader: true,
		// A check that met a pooled connection the service had closed is
		// sent once more on a fresh one, whatever its method (it has no
		// body), within the same deadline; a timeout is not retried.
		MaxIdemponentCallAttempts: 2,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, true },
	}
	return f, nil
}

// Close closes the idle connections to the service.
func (f *Forward) Close() {
	if f != nil {
		f.hc.CloseIdleConnections()
	}
}

// ForwardRequest is what the service is told about a request.
type ForwardRequest struct {
	// Header is the client's request header: its method and the fields
	// named by SendHeaders are passed on.
	Header *fasthttp.RequestHeader
	// Proto is "http" or "https"; Host the request's host; URI its
	// target as received; ClientIP the client's address.
	Proto, Host, URI, ClientIP []byte
}

// ErrForward marks a failed exchange with the service (refused, reset,
// timed out, malformed or oversized answer).
var ErrForward = errors.New("auth: forward: the authentication service failed")

// Ask sends the service a subrequest for r and reads its answer into resp
// (body at most MaxForwardBody): the client's method with no body, the
// X-Forwarded-Method, -Proto, -Host, -Uri and -For fields, and the client's
// SendHeaders. The caller judges resp: 2xx lets the request through.
func (f *Forward) Ask(r ForwardRequest, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	h := &req.Header
	method := r.Header.Method()
	h.SetMethodBytes(method)
	h.SetRequestURIBytes(f.uri)
	h.SetHostBytes(f.host)
	for _, name := range f.send {
		for _, v := range r.Header.PeekAll(string(name)) {
			h.AddBytesKV(name, v)
		}
	}
	h.Set("X-Forwarded-Method", string(method))
	h.SetBytesV("X-Forwarded-Proto", r.Proto)
	h.SetBytesV("X-Forwarded-Host", r.Host)
	h.SetBytesV("X-Forwarded-Uri", r.URI)
	h.SetBytesV("X-Forwarded-For", r.ClientIP)
	if string(method) == fasthttp.MethodHead {
		resp.SkipBody = true
	}
	if err := f.hc.DoTimeout(req, resp, f.timeout); err != nil {
		return fmt.Errorf("%w: %w", ErrForward, err)
	}
	return nil
}
