package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/wire/http2"
)

// h2Servers are a listener's HTTP/2 servers (wire/http2): the current one,
// which takes the connections handed off from now on, and those a reload
// replaced (a changed http2 block or limits), which serve the connections
// they have to their end. A reload never closes a connection.
type h2Servers struct {
	mu     sync.Mutex // guards the fields below
	cfg    http2.Config
	cur    *h2Server
	old    []*h2Server
	closed bool // shut down: no connection is taken any more
}

// h2Server is one HTTP/2 server and the connections it serves.
type h2Server struct {
	srv   *http2.Server
	conns int // guarded by h2Servers.mu
}

// h2OnGoroutines serves HTTP/2 streams on x/net's goroutine per stream
// instead of the workers: for BenchmarkProxyH2GET's comparison only.
var h2OnGoroutines = false

// configure makes cfg the configuration of the connections handed off from
// now on: a new server when it differs from the current one's. Replaced
// servers without a connection are dropped.
func (hs *h2Servers) configure(l *listener, cfg http2.Config) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed || (hs.cur != nil && reflect.DeepEqual(hs.cfg, cfg)) {
		return
	}
	if hs.cur != nil {
		hs.old = append(hs.old, hs.cur)
	}
	hs.old = slices.DeleteFunc(hs.old, func(s *h2Server) bool { return s.conns == 0 })
	hs.cfg = cfg
	run := cfg
	run.Logger = l.srv.log.With("listener", l.name)
	if !h2OnGoroutines {
		run.Run = l.srv.workers.Go // the streams on HTTP/1.1's workers: grown stacks
	}
	hs.cur = &h2Server{srv: http2.New(l, run)}
}

// acquire returns the current server with one more connection counted, or
// nil after shutdown.
func (hs *h2Servers) acquire() *h2Server {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed || hs.cur == nil {
		return nil
	}
	hs.cur.conns++
	return hs.cur
}

func (hs *h2Servers) release(s *h2Server) {
	hs.mu.Lock()
	s.conns--
	hs.mu.Unlock()
}

// shutdown sends GOAWAY on every HTTP/2 connection of the listener and
// waits until their streams have finished, or ctx ends (then it closes
// them). It takes no connection after.
func (hs *h2Servers) shutdown(ctx context.Context) error {
	hs.mu.Lock()
	hs.closed = true
	all := slices.Clone(hs.old)
	if hs.cur != nil {
		all = append(all, hs.cur)
	}
	hs.mu.Unlock()
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, s := range all {
		wg.Go(func() { errs[i] = s.srv.Shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// configure applies a listener's configuration to its wire: limits, h2c
// detection, the HTTP/2 limits. Connections already open keep what they
// were accepted with, but for the limits HTTP/1.1 applies per request
// burst.
func (l *listener) configure(lc *config.Listener) {
	l.wire.SetLimits(lc.Limits)
	l.wire.SetDetectPreface(lc.TLS == nil && slices.Contains(lc.Protocols, config.ProtocolH2C))
	l.wire.SetProxyProtocol(proxyProtocolTrusted(lc)) // ipaccess.go
	l.h2.configure(l, http2.ConfigFrom(lc))
}

// handOff serves a connection that negotiated h2 by ALPN, or began with the
// HTTP/2 preface on a plain listener that serves h2c, with the listener's
// HTTP/2 server; its streams go to the pipeline (ServeWire) like HTTP/1.1
// requests. The wire closes c after.
func (l *listener) handOff(c net.Conn, proto string, buffered []byte, _ netip.Addr) {
	lr := l.srv.snap.Load().listeners[l.name]
	if lr == nil || !(proto == "h2" && lr.h2 || proto == "h2c" && lr.h2c) {
		return // a reload removed the listener or the protocol meanwhile
	}
	s := l.h2.acquire()
	if s == nil {
		return // shutting down
	}
	defer l.h2.release(s)
	_ = s.srv.ServeConn(c, buffered)
}

// shutdown stops the listener: no new connection, GOAWAY on its HTTP/2
// connections, the requests and streams in flight served to their end or
// until ctx ends.
func (l *listener) shutdown(ctx context.Context) error {
	var h2err error
	var wg sync.WaitGroup
	// The HTTP/1.1 wire waits for handed-off connections to end, which
	// the HTTP/2 servers' GOAWAY brings about: both at once.
	wg.Go(func() { h2err = l.h2.shutdown(ctx) })
	err := l.wire.Shutdown(ctx)
	wg.Wait()
	if errors.Is(h2err, context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
		h2err = nil // said once
	}
	return errors.Join(err, h2err)
}
