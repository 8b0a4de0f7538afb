package tls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// staticCerts are a listener's certificates: entries, indexed by the DNS
// names of their SANs (the configuration names files, never hosts).
// Immutable once built.
type staticCerts struct {
	exact    map[string]*tls.Certificate // "api.example.com"
	wildcard map[string]*tls.Certificate // "example.com" for a SAN "*.example.com"
	def      *tls.Certificate            // certificates[0]: no SNI, or a name no SAN matches
	all      []*tls.Certificate          // in configuration order
}

// loadStatic reads and checks every pair. p is the field path of the list,
// for errors ("listeners.websecure.tls.certificates"). When two
// certificates name the same host, the first one listed serves it.
func loadStatic(p string, list []config.Certificate) (*staticCerts, error) {
	s := &staticCerts{
		exact:    make(map[string]*tls.Certificate),
		wildcard: make(map[string]*tls.Certificate),
	}
	for i, c := range list {
		cert, err := loadPair(c)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", p, i, err)
		}
		s.all = append(s.all, cert)
		if s.def == nil {
			s.def = cert
		}
		for _, name := range cert.Leaf.DNSNames {
			name = normalizeName(name)
			m, key := s.exact, name
			if rest, ok := strings.CutPrefix(name, "*."); ok {
				m, key = s.wildcard, rest
			}
			if _, dup := m[key]; !dup {
				m[key] = cert
			}
		}
	}
	return s, nil
}

// loadPair reads one certificate chain and its key; its errors name both
// files.
func loadPair(c config.Certificate) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s, key_file %s: %w", strconv.Quote(c.CertFile), strconv.Quote(c.KeyFile), err)
	}
	if cert.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cert_file %s: %w", strconv.Quote(c.CertFile), err)
		}
	}
	return &cert, nil
}

// lookupExact returns the certificate with a SAN equal to name.
func (s *staticCerts) lookupExact(name string) *tls.Certificate {
	return s.exact[name]
}

// lookupWildcard returns the certificate with a SAN "*.rest" where name is
// "label.rest" (a wildcard covers exactly one label).
func (s *staticCerts) lookupWildcard(name string) *tls.Certificate {
	i := strings.IndexByte(name, '.')
	if i <= 0 {
		return nil
	}
	return s.wildcard[name[i+1:]]
}

// covers reports whether a SAN of some certificate matches host.
func (s *staticCerts) covers(host string) bool {
	return s.lookupExact(host) != nil || s.lookupWildcard(host) != nil
}

// normalizeName lower-cases a server name and drops one trailing dot; it
// allocates only when the name has an upper-case letter.
func normalizeName(name string) string {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(name)
		}
	}
	return name
}
