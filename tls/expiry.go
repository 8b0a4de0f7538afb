package tls

import (
	"slices"
	"strings"
	"time"
)

// Sources of a certificate (CertificateInfo.Source).
const (
	SourceStatic = "static"
	SourceACME   = "acme"
)

// CertificateInfo is one host's certificate, for the expiry metric.
type CertificateInfo struct {
	// Host is a DNS name of the certificate's SANs ("*.example.com" for
	// a wildcard), or its subject's common name when it has no DNS SAN.
	Host string
	// Source is SourceStatic or SourceACME.
	Source string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
}

// Certificates lists the certificates this Manager serves, by host: every
// SAN of every static certificate, and every ACME host whose certificate a
// handshake has received (an ACME certificate not yet obtained, or not yet
// loaded from the cache by a handshake, is absent). A renewed ACME
// certificate shows from the first handshake that gets it. Sorted by host,
// then source; it allocates, so call it on a metrics scrape, not per
// request.
func (m *Manager) Certificates() []CertificateInfo {
	var out []CertificateInfo
	seen := make(map[string]bool)
	for _, c := range m.static.all {
		names := c.Leaf.DNSNames
		if len(names) == 0 {
			names = []string{c.Leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = normalizeName(n)
			if !seen[n] {
				seen[n] = true
				out = append(out, CertificateInfo{Host: n, Source: SourceStatic, NotAfter: c.Leaf.NotAfter})
			}
		}
	}
	for h, hs := range m.acme {
		if exp := hs.notAfter.Load(); exp != 0 {
			out = append(out, CertificateInfo{Host: h, Source: SourceACME, NotAfter: time.Unix(exp, 0)})
		}
	}
	slices.SortFunc(out, func(a, b CertificateInfo) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.Source, b.Source)
	})
	return out
}
