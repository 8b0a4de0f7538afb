// Package http1 is Rampart's HTTP/1.1 wire: the server side (a listener's
// connection loop, admission, worker pool, request reading and strict
// framing, TLS record handling, progress timeouts, graceful shutdown and the
// hand-over of a connection to a WebSocket tunnel) and the client side (the
// exchange with an upstream target over pooled keep-alive connections).
//
// The server reads each request into a fasthttp.RequestCtx and calls a
// wire.Handler with the connection as its wire.Stream; it writes the
// Handler's response back. It knows nothing of routes or upstreams.
//
// Rampart runs its own HTTP/1.1 connection loop on fasthttp's parsers rather
// than fasthttp.Server, for two reasons an edge proxy cares about:
//
//   - An idle keep-alive connection holds no buffer and no large stack. Its
//     goroutine waits for the socket to become readable without reading (a
//     MSG_PEEK probe, then the runtime poller), so it stays at the smallest
//     stack size; requests are served by a pool of worker goroutines
//     (Workers) that own the buffers and the deep stacks only while a
//     request is in flight (and for a moment after it, in case the client's
//     next request follows at once: see lingerFor).
//   - Every limit is ours: connections are counted and refused at accept
//     time, and each timeout (header, body, idle, write) is set exactly
//     once.
package http1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/wire"
)

// HandOff takes over a connection that speaks another protocol than
// HTTP/1.1: proto is the protocol ALPN negotiated on a TLS connection ("h2"),
// or "h2c" for a plain connection that began with the HTTP/2 preface (see
// Server.SetDetectPreface). c is the connection (TLS already done);
// buffered holds the bytes already read from it, the preface included, which
// come before anything c still has to give. peer is the client's address.
//
// HandOff runs in the connection's own goroutine and serves the connection
// to its end: the connection counts against max_connections and
// max_connections_per_ip until HandOff returns, and the server closes c
// after it returns. Shutdown closes the listener and then waits for HandOff
// to return like for any other connection (until its context ends, when it
// closes c): the callee watches its own shutdown signal to end gracefully.
type HandOff func(c net.Conn, proto string, buffered []byte, peer netip.Addr)

// Preface is the HTTP/2 client connection preface (RFC 9113 section 3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Server serves one listener's connections.
type Server struct {
	// Handler serves each request.
	Handler wire.Handler
	// Workers runs the request bursts; one pool may serve many servers.
	Workers *Workers
	// Name is the listener's name, for logs.
	Name string
	// Log receives the server's messages about connections.
	Log *slog.Logger
	// Metrics counts connections, refusals and timeouts (nil: none).
	Metrics *metrics.ListenerMetrics
	// TLS returns the TLS configuration a new connection is served with,
	// or nil to serve it in plain text. It is asked at each accept, so
	// that a reload may turn TLS on or off on a listener it keeps.
	TLS func() *tls.Config
	// HandOff, if set, takes the connections that negotiate another
	// protocol by ALPN, or (SetDetectPreface) begin with the HTTP/2
	// preface. Without it they are served as HTTP/1.1 (and an HTTP/2
	// preface is answered 400).
	HandOff HandOff
	// Answered is told of each answer the server makes itself, without
	// calling Handler (a request it could not read: 400, 408, 413, 431,
	// 505), for the metrics.
	Answered func(status int)

	ln      net.Listener
	lim     atomic.Pointer[config.Limits]  // replaced by a reload
	preface atomic.Bool                    // detect the HTTP/2 preface on plain connections
	proxy   atomic.Pointer[[]netip.Prefix] // PROXY protocol's trusted peers; nil: off (proxyproto.go)
	open    atomic.Int64                   // connections being served
	closing atomic.Bool                    // shutdown has begun

	mu    sync.Mutex // guards the fields below
	conns map[*conn]struct{}
	perIP map[netip.Addr]int
	done  chan struct{} // closed when the last connection ends after shutdown
}

// SetLimits sets the limits connections are served with from their next
// request burst on.
func (s *Server) SetLimits(lim config.Limits) { s.lim.Store(&lim) }

// SetDetectPreface makes plain connections that begin with the HTTP/2
// preface go to HandOff (as "h2c") rather than be served as HTTP/1.1.
func (s *Server) SetDetectPreface(on bool) { s.preface.Store(on) }

// Open is the number of connections being served (tunnels not included).
func (s *Server) Open() int64 { return s.open.Load() }

// Active is the number of connections whose requests a worker is serving
// (or lingering on, waiting briefly for the next one).
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for cn := range s.conns {
		if cn.active.Load() {
			n++
		}
	}
	return n
}

// Serve accepts connections on ln until Shutdown closes it, and returns nil
// then. SetLimits must have been called before. A Shutdown that comes
// before Serve makes it close ln and return at once.
func (s *Server) Serve(ln net.Listener) error {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	s.mu.Lock()
	s.ln = ln
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
		s.perIP = make(map[netip.Addr]int)
	}
	closing := s.closing.Load() // Shutdown came first: it found no listener to close
	s.mu.Unlock()
	if closing {
		_ = ln.Close()
		return nil
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: wait, do not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed", "listener", s.Name, "error", err.Error(), "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		cn := s.admit(c)
		if cn == nil {
			_ = c.Close() // over a connection limit: refused before reading anything
			continue
		}
		go cn.serve()
	}
}

// admit registers c, or returns nil when a connection limit refuses it.
func (s *Server) admit(c net.Conn) *conn {
	ip := netip.IPv4Unspecified()
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if addr, ok := netip.AddrFromSlice(a.IP); ok {
			ip = addr.Unmap()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		s.Metrics.Refused(metrics.RefusedShutdown)
		return nil
	}
	lim := s.lim.Load()
	if m := lim.MaxConnections; m > 0 && len(s.conns) >= m {
		s.Metrics.Refused(metrics.RefusedMaxConnections)
		return nil
	}
	raw := c
	var proxied *proxiedConn
	if trusted := s.proxy.Load(); trusted != nil {
		if !trustedProxy(ip, *trusted) {
			s.Metrics.Refused(metrics.RefusedProxyUntrusted)
			return nil
		}
		// The header is read by the connection's goroutine; the per-IP
		// limit applies to the client it names (movePeer), not to the
		// balancer every connection comes from.
		proxied = &proxiedConn{Conn: c}
		c = proxied
	} else if m := lim.MaxConnectionsPerIP; m > 0 && s.perIP[ip] >= m {
		s.Metrics.Refused(metrics.RefusedMaxConnectionsPerIP)
		return nil
	}
	cn := &conn{s: s, c: c, ip: ip, result: make(chan bool, 1), send: progressWriter{c: c}, proxied: proxied}
	if tc, ok := raw.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
		if rc, err := tc.SyscallConn(); err == nil {
			cn.rc = rc
			cn.probe = cn.probeFD
		}
	}
	if s.TLS != nil {
		if conf := s.TLS(); conf != nil {
			// The TCP socket is still what the idle wait probes: a TLS
			// record arriving makes it readable like any request.
			cn.rec = &recordConn{Conn: c, cn: cn}
			cn.tlsConn = tls.Server(cn.rec, conf)
			cn.c = cn.tlsConn
		}
	}
	s.conns[cn] = struct{}{}
	s.perIP[ip]++
	s.open.Add(1)
	s.Metrics.Inc()
	return cn
}

func (s *Server) forget(cn *conn) {
	s.mu.Lock()
	delete(s.conns, cn)
	if s.perIP[cn.ip]--; s.perIP[cn.ip] <= 0 {
		delete(s.perIP, cn.ip)
	}
	last := len(s.conns) == 0 && s.closing.Load() && s.done != nil
	s.mu.Unlock()
	s.open.Add(-1)
	s.Metrics.Dec()
	if last {
		close(s.done)
	}
}

// Shutdown stops accepting, wakes idle connections so they close, lets
// active ones finish their request, and closes what is left when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.done == nil {
		s.done = make(chan struct{})
		if len(s.conns) == 0 {
			close(s.done)
		}
	}
	for cn := range s.conns {
		if !cn.active.Load() && !cn.handedOff {
			_ = cn.c.SetReadDeadline(aLongTimeAgo)
		}
	}
	done := s.done
	ln := s.ln
	s.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	select {
	case <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		for cn := range s.conns {
			_ = cn.c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Drain closes the listener, closes its idle connections and waits, without
// limit, until its busy ones have finished their request.
func (s *Server) Drain() error {
	return s.Shutdown(context.Background())
}

// fasthttpLogger sends fasthttp's own messages to slog at debug level: they
// are about single misbehaving connections.
type fasthttpLogger struct{ log *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.log.Enabled(context.Background(), slog.LevelDebug) {
		f.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
	}
}

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)
