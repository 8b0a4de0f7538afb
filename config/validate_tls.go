package config

import (
	"net/url"
	"strconv"
	"strings"
)

// listenerTLS checks a listener's TLS block at p.
func (v *validator) listenerTLS(p string, t *ListenerTLS) {
	if !oneOf(t.MinVersion, "1.2", "1.3") {
		v.errorf(p+".min_version", `%q must be "1.2" or "1.3"`, t.MinVersion)
	}
	if len(t.Certificates) == 0 && t.ACME == nil {
		v.fieldf(p, "certificates", "certificates or acme is required")
	}
	for i, c := range t.Certificates {
		cp := p + ".certificates[" + strconv.Itoa(i) + "]"
		if c.CertFile == "" {
			v.fieldf(cp, "cert_file", "cert_file is required")
		}
		if c.KeyFile == "" {
			v.fieldf(cp, "key_file", "key_file is required")
		}
	}
	if t.ClientAuth != "" {
		if !oneOf(t.ClientAuth, ClientAuthRequire, ClientAuthVerifyIfGiven) {
			v.errorf(p+".client_auth", "%q must be require or verify_if_given", t.ClientAuth)
		} else if t.ClientCAFile == "" {
			v.fieldf(p, "client_auth", "client_auth needs client_ca_file")
		}
	}
	if t.ACME != nil {
		v.acme(p+".acme", t.ACME)
	}
}

// acme checks an ACME block at p.
func (v *validator) acme(p string, a *ACME) {
	switch a.Cache {
	case StoreDir:
		if a.CacheDir == "" {
			v.fieldf(p, "cache_dir", "cache_dir is required with cache dir")
		}
	case StoreRedis:
		if v.c.Redis == nil {
			v.errorf(p+".cache", `"redis" needs the top-level redis section`)
		}
	default:
		v.errorf(p+".cache", "%q must be dir or redis", a.Cache)
	}
	if u, err := url.Parse(a.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.errorf(p+".directory_url", "%q is not an http(s) URL", a.DirectoryURL)
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		v.errorf(p+".email", "%q is not an address", a.Email)
	}
	for i, h := range a.Hosts {
		if !validDNSName(h) {
			v.errorf(p+".hosts["+strconv.Itoa(i)+"]", "%q is not a DNS name (ACME cannot order wildcards or IPs here)", h)
		}
	}
}
