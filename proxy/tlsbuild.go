package proxy

import (
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	proxytls "github.com/rampart-proxy/rampart/tls"
)

// tlsBuild carries what building TLS managers takes from the server: state
// that must outlive one snapshot (ACME issuers, the Redis client).
type tlsBuild struct {
	issuers *proxytls.Issuers
	redis   redis.UniversalClient
	log     *slog.Logger
}

// manager builds the TLS manager of listener name, whose routes are bound.
func (tb *tlsBuild) manager(cfg *config.Config, name string, l *config.Listener, bound []*config.Route) (*proxytls.Manager, error) {
	var hosts []string
	for _, r := range bound {
		if r.Match.Host != "" {
			hosts = append(hosts, r.Match.Host)
		}
		hosts = append(hosts, r.Match.Hosts...)
	}
	prefix := ""
	if cfg.Redis != nil {
		prefix = cfg.Redis.KeyPrefix
	}
	return proxytls.New(l.TLS, proxytls.Options{
		Name:           name,
		RouteHosts:     hosts,
		NoHTTP01:       !hasPlainListener(cfg),
		Redis:          tb.redis,
		RedisKeyPrefix: prefix,
		Issuers:        tb.issuers,
		Logger:         tb.log,
		NextProtos:     alpnProtocols(l.Protocols),
	})
}

// alpnProtocols are the ALPN names of a TLS listener's protocols, in
// their configured order (the server's preference).
func alpnProtocols(protocols []string) []string {
	out := make([]string, 0, len(protocols))
	for _, p := range protocols {
		switch p {
		case config.ProtocolH2:
			out = append(out, proxytls.ALPNH2)
		case config.ProtocolHTTP1:
			out = append(out, proxytls.ALPNHTTP1)
		}
	}
	return out
}

func hasPlainListener(cfg *config.Config) bool {
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			return true
		}
	}
	return false
}

// usesRedisACME reports whether a TLS listener keeps its ACME state in Redis.
func usesRedisACME(cfg *config.Config) bool {
	for _, l := range cfg.Listeners {
		if l.TLS != nil && l.TLS.ACME != nil && l.TLS.ACME.Cache == config.StoreRedis {
			return true
		}
	}
	return false
}

// clientSubjectHeader carries the verified client certificate's subject to
// the upstream on listeners with client_ca_file. Whatever a client sends in
// it is removed first.
const clientSubjectHeader = "X-Client-Cert-Subject"

// acmeChallengePrefix is where HTTP-01 challenges are asked for.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

func isACMEChallenge(path []byte) bool {
	return len(path) > len(acmeChallengePrefix) && strings.HasPrefix(string(path), acmeChallengePrefix)
}
