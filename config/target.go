package config

import (
	"net"
	"net/url"
)

// Address returns the target's host:port, with the scheme's port when the
// URL has none. Backend state is keyed by it, so two spellings of one
// target ("http://a" and "http://a:80") share their health. It returns ""
// for a URL that Validate refuses.
func (t Target) Address() string {
	u, err := url.Parse(t.URL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
