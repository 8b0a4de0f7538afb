package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	proxytls "github.com/rampart-proxy/rampart/tls"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/wire/http1"
)

// snapshot is one immutable runtime configuration. The handler loads it once
// at the start of a request and uses nothing else until the request ends, so a
// reload never mixes two configurations within one request.
type snapshot struct {
	cfg       *config.Config
	listeners map[string]*listenerRoutes
	pools     map[string]*pool
	trusted   []netip.Prefix
	limits    map[string]*limit
	waf       map[string]*waf.Policy
	// noRoute counts the requests no route matched.
	noRoute *metrics.RouteMetrics
	// acme are the TLS managers that order certificates, whose HTTP-01
	// challenges every plain listener answers.
	acme []*proxytls.Manager
	// redirectTLS are the TLS listeners, in the order in which a
	// redirect_https route that no TLS listener serves looks for one whose
	// routes match the request (config.RedirectCandidates), and
	// redirectPorts their ports ("" for 443).
	redirectTLS   []*listenerRoutes
	redirectPorts []string
	// transports by key, reused by the next snapshot.
	transports map[transportKey]*transport
	// redact hides query parameters in the access log.
	redact *queryRedactor
	// access is the access log (nil: off), kept by the next snapshot
	// when its path is the same.
	access *accessLog
	// auths are the authentication policies by name (auth.go), kept by
	// the next snapshot when unchanged.
	auths map[string]*authPolicy
	// caches are the response cache policies by name (cache_build.go);
	// redis is the Redis client the snapshot's stores use (nil: none).
	caches map[string]*cachePolicy
	redis  redis.UniversalClient
	// tracing exports traces (nil: off), kept by the next snapshot when
	// its settings are the same (trace.go).
	tracing *tracing
}

// listenerRoutes is what one listener serves.
type listenerRoutes struct {
	name string
	tls  bool
	// tlsMgr terminates TLS on a TLS listener (nil on a plain one).
	tlsMgr *proxytls.Manager
	// clientSubject forwards the verified client certificate's subject
	// (client_ca_file set).
	clientSubject bool
	routes        []*route
	router        *router
	limits        config.Limits
	// pathMode is the listener's path_handling (pathNormalize...).
	pathMode int
	// underscores keeps header names with an underscore
	// (underscores_in_headers).
	underscores bool
	// http1, h2 and h2c are the protocols the listener serves
	// (protocols).
	http1, h2, h2c bool
}

// route is a compiled config.Route.
type route struct {
	name      string
	nameBytes []byte      // name, for rate limit keys
	limit     *limit      // nil: no rate limit
	waf       *waf.Policy // nil: no WAF
	metrics   *metrics.RouteMetrics
	cfg       *config.Route
	pool      *pool // nil for respond and split routes
	// split holds a split route's pools and their cumulative weights.
	split    []*pool
	splitCum []int
	respond  *config.Respond
	// respondBody is the direct answer's body, converted once.
	respondBody []byte
	// httpsPort is where redirect_https sends the route's plain-HTTP
	// requests: the port of its TLS listener (config.RedirectListener), ""
	// for 443. httpsByMatch says no TLS listener serves the route: the
	// redirect goes to the first of the snapshot's redirectTLS that
	// matches the request.
	httpsPort    string
	httpsByMatch bool
	// h2 says every upstream of the route speaks HTTP/2: a gRPC request to
	// it is a gRPC call, whose body the WAF leaves alone (waf.Request.GRPC).
	h2 bool

	// The edge features (edge.go); nil: not used by the route.
	access *ipAccess // ipaccess.go

	cors *corsPolicy // cors.go

	auth *authPolicy // auth.go

	edits *routeEdits // edits.go

	mirror *mirror // mirror.go

	cache *routeCache // cache.go

	compress *compressor // compress.go
}

// pool is an upstream: its balancer pool and the transport of each target.
type pool struct {
	name       string
	cfg        *config.Upstream
	balancer   *balancer.Pool
	transports []*transport // by target index
	// targetNames are the targets' identities (scheme://host:port) by index.
	targetNames []string
	// latency says the balancer weighs targets by their latency (p2c).
	latency bool
	// h2 says the targets speak HTTP/2 (protocol: http2): transports[i].h2
	// is each one's client.
	h2 bool
	// budget bounds the pool's retries.
	budget *retryBudget
	// connectRetries is how many other targets a connect failure may try
	// (connect_retries); cfg.Retries counts the retries of sent requests.
	connectRetries int
	// targetMetrics are the targets' metrics by index.
	targetMetrics []*metrics.TargetMetrics
}

// buildSnapshot compiles cfg. prev, when not nil, is the running snapshot
// whose transports are reused for targets that keep their settings.
func buildSnapshot(cfg *config.Config, prev *snapshot, reg *balancer.Registry, opt balancer.Options, limits map[string]*limit, m *metrics.Metrics, tb *tlsBuild, policies map[string]*waf.Policy, workers *http1.Workers) (*snapshot, error) {
	s := &snapshot{
		cfg:        cfg,
		listeners:  make(map[string]*listenerRoutes, len(cfg.Listeners)),
		pools:      make(map[string]*pool, len(cfg.Upstreams)),
		trusted:    cfg.TrustedProxyPrefixes(),
		transports: make(map[transportKey]*transport),
		limits:     limits,
		waf:        policies,
		noRoute:    m.Route(noRouteLabel),
		redact:     newQueryRedactor(cfg.AccessLog.RedactQuery),
	}
	var old map[transportKey]*transport
	if prev != nil {
		old = prev.transports
	}
	for _, name := range sortedKeys(cfg.Upstreams) {
		p, err := buildPool(name, cfg.Upstreams[name], old, s.transports, reg, opt, workers)
		if err != nil {
			return nil, err
		}
		for i, t := range p.balancer.Targets {
			tm := m.Target(name, p.targetNames[i])
			tm.Track(t.State)
			p.targetMetrics = append(p.targetMetrics, tm)
		}
		s.pools[name] = p
	}
	for _, name := range sortedKeys(cfg.Listeners) {
		l := cfg.Listeners[name]
		lr := &listenerRoutes{name: name, tls: l.TLS != nil, limits: l.Limits,
			pathMode: pathModeOf(l.PathHandling), underscores: l.UnderscoresInHeaders,
			http1: slices.Contains(l.Protocols, config.ProtocolHTTP1),
			h2:    slices.Contains(l.Protocols, config.ProtocolH2),
			h2c:   slices.Contains(l.Protocols, config.ProtocolH2C)}
		if l.TLS != nil {
			lr.clientSubject = l.TLS.ClientCAFile != ""
		}
		var bound []*config.Route
		for _, rc := range cfg.Routes {
			if len(rc.Listeners) > 0 && !slices.Contains(rc.Listeners, name) {
				continue
			}
			r := &route{name: rc.Name, nameBytes: []byte(rc.Name), cfg: rc, respond: rc.Respond, metrics: m.Route(rc.Name)}
			if rc.WAF != "" {
				p, ok := policies[rc.WAF]
				if !ok {
					return nil, fmt.Errorf("route %q: waf policy %q is not defined", rc.Name, rc.WAF)
				}
				r.waf = p
			}
			if rc.RateLimit != "" {
				if r.limit = limits[rc.RateLimit]; r.limit == nil {
					return nil, fmt.Errorf("route %q: rate limit %q is not defined", rc.Name, rc.RateLimit)
				}
			}
			if rc.Respond != nil {
				r.respondBody = []byte(rc.Respond.Body)
			}
			if rc.RedirectHTTPS {
				if tl, ok := cfg.RedirectListener(rc); ok {
					r.httpsPort = redirectPort(cfg.Listeners[tl].Address)
				} else {
					r.httpsByMatch = true
				}
			}
			if rc.Upstream != "" {
				r.pool = s.pools[rc.Upstream]
				if r.pool == nil {
					return nil, fmt.Errorf("route %q: upstream %q is not defined", rc.Name, rc.Upstream)
				}
			}
			for _, st := range rc.Split {
				sp := s.pools[st.Upstream]
				if sp == nil {
					return nil, fmt.Errorf("route %q: split upstream %q is not defined", rc.Name, st.Upstream)
				}
				total := st.Weight
				if n := len(r.splitCum); n > 0 {
					total += r.splitCum[n-1]
				}
				r.split = append(r.split, sp)
				r.splitCum = append(r.splitCum, total)
			}
			r.h2 = r.pool != nil && r.pool.h2 || len(r.split) > 0
			for _, sp := range r.split {
				r.h2 = r.h2 && sp.h2
			}
			lr.routes = append(lr.routes, r)
			bound = append(bound, rc)
		}
		lr.router = newRouter(bound)
		s.listeners[name] = lr
		if l.TLS != nil && tb != nil {
			mgr, err := tb.manager(cfg, name, l, bound)
			if err != nil {
				s.closeTLS()
				return nil, err
			}
			lr.tlsMgr = mgr
			if l.TLS.ACME != nil {
				s.acme = append(s.acme, mgr)
			}
		}
	}
	for _, name := range cfg.RedirectCandidates() {
		s.redirectTLS = append(s.redirectTLS, s.listeners[name])
		s.redirectPorts = append(s.redirectPorts, redirectPort(cfg.Listeners[name].Address))
	}
	return s, nil
}

// redirectPort is the port an https URL to a listener on addr names: ""
// for 443, the default.
func redirectPort(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "443" {
		return port
	}
	return ""
}

// closeTLS releases the snapshot's TLS managers (their ACME issuers), once
// no connection handshakes with them any more.
func (s *snapshot) closeTLS() {
	for _, lr := range s.listeners {
		if lr.tlsMgr != nil {
			lr.tlsMgr.Close()
		}
	}
}

func buildPool(name string, up *config.Upstream, old, built map[transportKey]*transport, reg *balancer.Registry, opt balancer.Options, workers *http1.Workers) (*pool, error) {
	p := &pool{name: name, cfg: up, latency: up.Balancer == config.BalancerP2C, budget: newRetryBudget(),
		h2: up.Protocol == config.UpstreamHTTP2, connectRetries: up.ConnectRetryCount()}
	targets := make([]*balancer.Target, 0, len(up.Targets))
	for i, tc := range up.Targets {
		t, err := transportFor(old, up, tc.URL, workers)
		if err != nil {
			return nil, fmt.Errorf("upstream %q: target %q: %w", name, tc.URL, err)
		}
		if b, ok := built[t.key]; ok {
			t = b // the same target listed twice shares one connection pool
		}
		built[t.key] = t
		p.transports = append(p.transports, t)
		p.targetNames = append(p.targetNames, t.key.addr)
		w := tc.Weight
		if w < 1 {
			w = 1
		}
		targets = append(targets, &balancer.Target{Index: i, Weight: w, State: reg.State(t.key.addr)})
	}
	b, err := balancer.New(name, up, targets, opt)
	if err != nil {
		return nil, err
	}
	p.balancer = b
	return p, nil
}

// noRouteLabel is the route label of requests no route matched.
const noRouteLabel = "(none)"

// retainMetrics drops the series of routes, targets, listeners and limits
// that snap no longer has.
func retainMetrics(m *metrics.Metrics, snap *snapshot) {
	if m == nil {
		return
	}
	routes := []string{noRouteLabel}
	for _, rc := range snap.cfg.Routes {
		routes = append(routes, rc.Name)
	}
	m.RetainRoutes(routes)
	var targets []metrics.TargetKey
	for name, p := range snap.pools {
		for _, t := range p.targetNames {
			targets = append(targets, metrics.TargetKey{Upstream: name, Target: t})
		}
	}
	m.RetainTargets(targets)
	m.RetainListeners(sortedKeys(snap.cfg.Listeners))
	m.RetainRateLimits(sortedKeys(snap.cfg.RateLimits))
	m.RetainWAF(sortedKeys(snap.cfg.WAF))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
