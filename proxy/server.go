// Package proxy is Rampart's request pipeline: the router, rate limits,
// authentication fields, the WAF, redirects, picking a target, forwarding
// to it (with retries), WebSocket tunnels, the access log, and the snapshot
// that ties a configuration to them; also the server that runs a
// configuration's listeners, its reloads and its admin API. The protocols
// are not here: a wire layer (wire/http1) serves each listener's
// connections and calls the pipeline (listener.ServeWire) per request
// through the seam in package wire, and sends requests upstream
// (http1.Client).
//
// A Server holds the running snapshot behind an atomic pointer. Each request
// loads it once and uses only it, so the hot path takes no lock and a future
// reload can swap configurations between two requests of one connection.
package proxy

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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	proxytls "github.com/rampart-proxy/rampart/tls"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/wire/http1"
)

// Server runs every listener of a configuration.
type Server struct {
	log  *slog.Logger
	snap atomic.Pointer[snapshot]
	reg  *balancer.Registry

	mu        sync.Mutex // guards listeners
	listeners map[string]*listener

	tunnels  tunnelSet      // open WebSocket tunnels, closed at the end of a shutdown
	traces   traceSet       // trace exporters not shut down yet, flushed by Shutdown (trace.go)
	workers  *http1.Workers // serve requests for every listener
	checkers []*balancer.Checker
	redis    redis.UniversalClient // shared by Redis stores; nil when none is used
	stop     chan struct{}         // closed by Shutdown: background loops end
	stopOnce sync.Once
	reloadMu sync.Mutex // serializes reloads (and the health checkers they restart)
	onReload func(ok bool)
	ready    atomic.Bool

	// metrics is nil without an admin listener: nothing reads them then,
	// so nothing records them.
	metrics  *metrics.Metrics
	registry *prometheus.Registry
	admin    *adminServer // nil without an admin listener
	version  string
	issuers  *proxytls.Issuers // ACME state across reloads
	audits   *waf.AuditLogs    // WAF audit logs by path, across reloads
	// wafBuffer bounds the bodies every WAF policy holds for inspection
	// (waf_buffer_limit); it outlives reloads, which change its limit.
	wafBuffer *waf.Budget
	// mirrors queues request copies for mirror upstreams (mirror.go).
	mirrors mirrorQueue
}

// Option adjusts a Server built by New.
type Option func(*Server)

// WithVersion sets the version reported by rampart_build_info.
func WithVersion(v string) Option { return func(s *Server) { s.version = v } }

// listener is one bound address and the wire server behind it. It is the
// wire.Handler of its requests (ServeWire).
type listener struct {
	name    string
	addr    string // the configured address
	srv     *Server
	ln      net.Listener
	wire    *http1.Server
	h2      h2Servers // serve the connections wire hands off (h2, h2c)
	metrics *metrics.ListenerMetrics
	done    chan error // the result of serve
	// tlsFront is what TLS connections are served with: it hands each
	// handshake the current configuration's TLS settings, and keeps the
	// session ticket keys (Go's, rotated daily) across reloads, so that
	// clients resume their sessions after a reload instead of doing full
	// handshakes.
	tlsFront *tls.Config
}

// newListener returns the listener name on ln, ready to serve as lc says
// (serve starts it).
func (s *Server) newListener(name string, lc *config.Listener, ln net.Listener) *listener {
	l := &listener{name: name, addr: lc.Address, srv: s, ln: ln, done: make(chan error, 1)}
	l.tlsFront = &tls.Config{GetConfigForClient: l.tlsConfig}
	l.wire = &http1.Server{Handler: l, Workers: s.workers, Name: name, Log: s.log, TLS: l.tlsFor, Answered: l.answered,
		HandOff: l.handOff}
	l.configure(lc)
	return l
}

// serve serves the listener in the background, its metrics in m.
func (l *listener) serve(m *metrics.ListenerMetrics) {
	l.metrics = m
	l.wire.Metrics = m
	go func() { l.done <- l.wire.Serve(l.ln) }()
}

// tlsFor is the TLS configuration a new connection is served with: nil
// when the current snapshot has the listener plain.
func (l *listener) tlsFor() *tls.Config {
	if lr := l.srv.snap.Load().listeners[l.name]; lr != nil && lr.tlsMgr != nil {
		return l.tlsFront
	}
	return nil
}

// answered counts an answer the wire made itself (a request it could not
// read) under the "(none)" route: no route was chosen.
func (l *listener) answered(status int) {
	if l.srv.metrics != nil {
		l.srv.snap.Load().noRoute.Observe(status, 0)
	}
}

// tlsConfig returns the listener's TLS settings in the current snapshot.
func (l *listener) tlsConfig(*tls.ClientHelloInfo) (*tls.Config, error) {
	if lr := l.srv.snap.Load().listeners[l.name]; lr != nil && lr.tlsMgr != nil {
		return lr.tlsMgr.TLSConfig(), nil
	}
	return nil, errors.New("proxy: the listener no longer serves TLS")
}

// New compiles cfg (already validated) into a server. Nothing is bound until
// Start. On error, nothing New opened is left open.
func New(cfg *config.Config, log *slog.Logger, opts ...Option) (*Server, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{log: log, reg: balancer.NewRegistry(), listeners: make(map[string]*listener),
		version: "dev", issuers: proxytls.NewIssuers(), audits: waf.NewAuditLogs()}
	for _, o := range opts {
		o(s)
	}
	if cfg.Admin != nil {
		s.registry = metrics.NewRegistry()
		m, err := metrics.New(s.registry, s.version)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	s.stop = make(chan struct{})
	s.wafBuffer = waf.NewBudget(wafBufferLimit(cfg))
	s.metrics.WAFBufferUsed(s.wafBuffer.Used)
	s.workers = http1.NewWorkers()
	a, err := s.assemble(cfg, nil, false)
	if err != nil {
		s.workers.Close()
		return nil, err
	}
	s.redis = a.redis
	s.snap.Store(a.snap)
	return s, nil
}

// Start binds every listener and serves them in the background. On error,
// the listeners already bound are closed.
func (s *Server) Start() error {
	cfg := s.snap.Load().cfg
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range sortedKeys(cfg.Listeners) {
		lc := cfg.Listeners[name]
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			for _, l := range s.listeners {
				_ = l.ln.Close()
			}
			s.listeners = make(map[string]*listener)
			return fmt.Errorf("listener %q: %w", name, err)
		}
		l := s.newListener(name, lc, ln)
		s.listeners[name] = l
		s.log.Info("listening", "listener", name, "address", ln.Addr().String())
		l.serve(s.metrics.Listener(name))
	}
	if a := cfg.Admin; a != nil {
		admin, err := newAdminServer(a, s, s.registry, s.log)
		if err != nil {
			for _, l := range s.listeners {
				_ = l.ln.Close()
			}
			return fmt.Errorf("admin: %w", err)
		}
		s.admin = admin
		s.log.Info("admin listening", "address", admin.Addr())
	}
	go sweepLimits(func() map[string]*limit { return s.snap.Load().limits }, s.stop)
	s.recordCertificates()
	go s.certificateLoop()
	s.reloadMu.Lock()
	err := s.startCheckers()
	s.reloadMu.Unlock()
	if err != nil {
		return err
	}
	s.ready.Store(true)
	return nil
}

// startCheckers starts the active health checks of every pool that has them.
func (s *Server) startCheckers() error {
	snap := s.snap.Load()
	for _, name := range sortedKeys(snap.pools) {
		p := snap.pools[name]
		if p.cfg.HealthCheck == nil {
			continue
		}
		c, err := balancer.NewChecker(p.balancer, p.cfg.HealthCheck, balancer.CheckerOptions{Logger: s.log, TLSConfig: p.healthTLS()})
		if err != nil {
			return fmt.Errorf("upstream %q: health check: %w", name, err)
		}
		c.Start(context.Background())
		s.checkers = append(s.checkers, c)
	}
	return nil
}

// Addr returns the bound address of a listener ("" when it is not bound).
// With port 0 in the config, this is where the kernel put it.
func (s *Server) Addr(listener string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[listener]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is done,
// then closes what is left, WebSocket tunnels included.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	ls := make([]*listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()

	s.ready.Store(false) // /readyz says so at once: load balancers stop sending
	s.tunnels.refuseNew()
	s.reloadMu.Lock()
	for _, c := range s.checkers {
		c.Stop()
	}
	s.checkers = nil
	s.reloadMu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ls))
	for i, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.shutdown(ctx)
		}()
	}
	wg.Wait()
	// Tunnels are long-lived by nature; give them until the deadline too.
	s.tunnels.wait(ctx)
	s.tunnels.closeAll()
	s.workers.Close()
	if s.admin != nil {
		if err := s.admin.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
	}
	s.snap.Load().closeTLS()
	retireWAF(s.snap.Load(), nil)
	retireAuth(s.snap.Load(), nil) // auth.go
	s.snap.Load().closeCaches(nil) // before the Redis client they may write with
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.redis != nil {
			_ = s.redis.Close()
		}
	})
	if err := s.snap.Load().access.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.traces.shutdown(ctx); err != nil { // flushes the spans batched, retired exporters' too
		errs = append(errs, fmt.Errorf("tracing: %w", err))
	}
	return errors.Join(errs...)
}

// clientAddr is the address the request comes from: the peer, or the
// right-most untrusted X-Forwarded-For hop when the peer is a trusted proxy.
func clientAddr(ctx *fasthttp.RequestCtx, snap *snapshot, peer netip.Addr) netip.Addr {
	if len(snap.trusted) == 0 {
		return peer
	}
	return clientIPFromHeader(peer, &ctx.Request.Header, snap.trusted)
}

// Check builds everything cfg describes without binding or connecting to
// anything, to find what validation of the file alone cannot: a rate that
// the limiter cannot represent, an upstream the balancer refuses. It is what
// `rampart validate` runs after config.Load, and it builds as New and
// Reload do (assemble), in a dry run.
func Check(cfg *config.Config) error {
	s := &Server{log: slog.New(slog.DiscardHandler), reg: balancer.NewRegistry()}
	a, err := s.assemble(cfg, nil, true)
	if err != nil {
		return err
	}
	closeNewAuth(a.snap, nil) // auth.go
	s.closeRedisIfNew(a.redis)
	return nil
}

// tlsBuild is what building the TLS managers of a snapshot needs.
func (s *Server) tlsBuild(client redis.UniversalClient) *tlsBuild {
	return &tlsBuild{issuers: s.issuers, redis: client, log: s.log}
}

// balancerOptions are the pools' options: ejections are logged by the
// balancer and counted by the metrics.
func (s *Server) balancerOptions() balancer.Options {
	return balancer.Options{Logger: s.log}
}

// RunningConfig returns the config now serving (the admin API's view).
func (s *Server) RunningConfig() *config.Config { return s.snap.Load().cfg }

// UpstreamStatus reports every upstream and the live state of its targets.
func (s *Server) UpstreamStatus() []UpstreamStatus {
	snap := s.snap.Load()
	now := time.Now()
	out := make([]UpstreamStatus, 0, len(snap.pools))
	for _, name := range sortedKeys(snap.pools) {
		p := snap.pools[name]
		us := UpstreamStatus{Name: name, Balancer: p.balancer.Balancer}
		for i, t := range p.balancer.Targets {
			us.Targets = append(us.Targets, TargetStatus{
				Address:   p.targetNames[i],
				URL:       p.cfg.Targets[i].URL,
				Weight:    t.Weight,
				Healthy:   t.State.Healthy(),
				Ejected:   t.State.Ejected(now),
				Inflight:  t.State.Inflight(),
				Ejections: t.State.Ejections(),
			})
		}
		out = append(out, us)
	}
	return out
}

// AdminAddr returns the admin listener's bound address ("" without one).
func (s *Server) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr()
}

// certificateRefresh is how often the certificate metrics are refreshed.
const certificateRefresh = 2 * time.Second

// recordCertificates publishes the expiry of every certificate the running
// snapshot serves, and forgets those it no longer serves.
func (s *Server) recordCertificates() {
	if s.metrics == nil {
		return
	}
	var keep []metrics.CertificateKey
	for _, lr := range s.snap.Load().listeners {
		if lr.tlsMgr == nil {
			continue
		}
		for _, c := range lr.tlsMgr.Certificates() {
			s.metrics.SetCertificateExpiry(c.Host, c.Source, c.NotAfter)
			keep = append(keep, metrics.CertificateKey{Host: c.Host, Source: c.Source})
		}
	}
	s.metrics.RetainCertificates(keep)
}

// certificateLoop refreshes the certificate metrics every few seconds:
// ACME certificates appear and renew on their own, and listing them is
// cheap.
func (s *Server) certificateLoop() {
	if s.metrics == nil {
		return
	}
	t := time.NewTicker(certificateRefresh)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.recordCertificates()
		}
	}
}
