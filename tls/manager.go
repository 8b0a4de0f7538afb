package tls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme"

	"github.com/rampart-proxy/rampart/config"
)

// Protocols offered through ALPN (Options.NextProtos).
const (
	// ALPNHTTP1 is HTTP/1.1, offered when Options.NextProtos is nil.
	ALPNHTTP1 = "http/1.1"
	// ALPNH2 is HTTP/2 over TLS.
	ALPNH2 = "h2"
	// ALPNChallenge is offered when ACME is on, for TLS-ALPN-01. A
	// connection that negotiated it carries a validation handshake, never
	// HTTP: the proxy closes it once the handshake is over.
	ALPNChallenge = acme.ALPNProto
)

// ErrNoCertificate is returned by the handshake for a server name that no
// certificate serves, on a listener without a default certificate (one with
// ACME only).
var ErrNoCertificate = errors.New("tls: no certificate for this server name")

// Options are what New needs beyond the listener's configuration.
type Options struct {
	// Name is the listener's name; errors say listeners.NAME.tls.
	// Empty: errors say "tls".
	Name string
	// RouteHosts are the hosts of the routes bound to the listener. When
	// acme.hosts is empty, the exact ones (no wildcards, no IPs, at least
	// one dot) not covered by a static certificate are the only names ACME
	// may order a certificate for.
	RouteHosts []string
	// NoHTTP01 leaves HTTP-01 out of the challenges tried after
	// TLS-ALPN-01 fails. Set it when no plain listener answers
	// HTTPChallenge. The zero value tries both.
	NoHTTP01 bool
	// Redis is the client for acme.cache: redis (required then). The
	// proxy keeps one client across reloads while the redis section is
	// unchanged: a new client is a new ACME identity (see Issuers).
	Redis redis.UniversalClient
	// RedisKeyPrefix prefixes every key ACME writes ("PREFIX" + "acme:").
	// Default config.DefaultRedisKeyPrefix.
	RedisKeyPrefix string
	// Issuers keeps ACME state across rebuilds. Nil: a new, private one,
	// as in a new process.
	Issuers *Issuers
	// Logger receives failed ACME orders and cache directory fixes.
	// Default: discard.
	Logger *slog.Logger
	// NextProtos are the application protocols offered by ALPN, in the
	// server's order of preference (ALPNH2, ALPNHTTP1). ALPNChallenge is
	// added after them when ACME is on. Nil means [ALPNHTTP1].
	NextProtos []string
}

// Manager serves one listener's certificates. It is immutable once built;
// a reload builds a new one and closes the old one once its connections no
// longer handshake.
type Manager struct {
	cfg    *tls.Config
	static *staticCerts
	acme   map[string]*hostState // the hosts ACME may order for; nil without ACME
	issuer *issuer               // nil without ACME
	closed sync.Once
}

// New reads the certificates, keys and CA files that t names and builds the
// listener's Manager. Every error names the field and the file. Without
// t.ACME, New does no I/O beyond reading those files; with it, it creates
// cache_dir (not the ACME account: that happens on the first order).
func New(t *config.ListenerTLS, o Options) (*Manager, error) {
	p := "tls"
	if o.Name != "" {
		p = "listeners." + o.Name + ".tls"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	static, err := loadStatic(p+".certificates", t.Certificates)
	if err != nil {
		return nil, err
	}
	m := &Manager{static: static}
	protos := []string{ALPNHTTP1}
	if o.NextProtos != nil {
		protos = append(make([]string, 0, len(o.NextProtos)+1), o.NextProtos...)
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: m.getCertificate,
	}
	switch t.MinVersion {
	case "", "1.2":
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf(`%s.min_version: %q must be "1.2" or "1.3"`, p, t.MinVersion)
	}
	if err := clientAuth(p, t, cfg); err != nil {
		return nil, err
	}
	if t.ACME != nil {
		hosts := acmeHosts(t.ACME.Hosts, o.RouteHosts, static)
		if len(hosts) == 0 && static.def == nil {
			return nil, fmt.Errorf("%s.acme: no host to order a certificate for: set acme.hosts, or bind routes with exact hosts to this listener", p)
		}
		if o.Issuers == nil {
			o.Issuers = NewIssuers()
		}
		iss, states, err := o.Issuers.acquire(m, p+".acme", t.ACME, hosts, o)
		if err != nil {
			return nil, err
		}
		m.issuer, m.acme = iss, states
		cfg.NextProtos = append(cfg.NextProtos, ALPNChallenge)
	}
	m.cfg = cfg
	return m, nil
}

// acmeHosts returns the names ACME may order for: the configured ones, or
// else the exact route hosts that no static certificate covers.
func acmeHosts(configured, routes []string, static *staticCerts) []string {
	seen := make(map[string]bool)
	var out []string
	add := func(h string) {
		h = normalizeName(h)
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	if len(configured) > 0 {
		for _, h := range configured {
			add(h)
		}
		return out
	}
	for _, h := range routes {
		h = normalizeName(h)
		if strings.Contains(h, "*") || !strings.Contains(h, ".") || net.ParseIP(h) != nil || static.covers(h) {
			continue
		}
		add(h)
	}
	return out
}

// TLSConfig returns the listener's configuration for crypto/tls.Server. It
// is shared: do not modify it.
func (m *Manager) TLSConfig() *tls.Config { return m.cfg }

// Close releases the Manager's hold on its ACME issuer: an issuer no
// Manager holds stops ordering and renewing. Close is idempotent; the
// Manager keeps serving the certificates it has.
func (m *Manager) Close() {
	m.closed.Do(func() {
		if m.issuer != nil {
			m.issuer.owner.release(m.issuer, m)
		}
	})
}

// getCertificate picks the handshake's certificate: a TLS-ALPN-01
// validation of an ACME host gets autocert's token certificate; otherwise an exact SAN of a
// static certificate, then an ACME host, then a wildcard SAN, then the first
// static certificate.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := normalizeName(hello.ServerName)
	if m.issuer != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNChallenge {
		if m.acme[name] == nil { // not worth a cache read
			return nil, fmt.Errorf("%w: %q", ErrRefused, name)
		}
		return m.issuer.ac.GetCertificate(hello)
	}
	if c := m.static.lookupExact(name); c != nil {
		return c, nil
	}
	if hs := m.acme[name]; hs != nil {
		return m.issuer.certificate(hello, hs)
	}
	if c := m.static.lookupWildcard(name); c != nil {
		return c, nil
	}
	if m.static.def != nil {
		return m.static.def, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrNoCertificate, name)
}

// Check reads and checks every file that t names (certificate pairs,
// client_ca_file, acme.ca_file, acme.encryption_key_file) as New does,
// with the same errors, but without New's side effects (no cache
// directory, no ACME state): for `rampart validate`. name is the
// listener's name.
func Check(name string, t *config.ListenerTLS) error {
	p := "listeners." + name + ".tls"
	if _, err := loadStatic(p+".certificates", t.Certificates); err != nil {
		return err
	}
	if err := clientAuth(p, t, &tls.Config{}); err != nil {
		return err
	}
	if t.ACME != nil && t.ACME.Cache == config.StoreRedis {
		if _, err := acmeKeyring(p+".acme", t.ACME); err != nil {
			return err
		}
	}
	if t.ACME == nil || t.ACME.CAFile == "" {
		return nil
	}
	caPEM, err := os.ReadFile(t.ACME.CAFile)
	if err != nil {
		return fmt.Errorf("%s.acme.ca_file: %w", p, err)
	}
	if _, _, err := newACMEHTTPClient(caPEM); err != nil {
		return fmt.Errorf("%s.acme.ca_file: %q %w", p, t.ACME.CAFile, err)
	}
	return nil
}
