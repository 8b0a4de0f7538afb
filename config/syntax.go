package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Syntax checks of single values, shared by the validators.

// checkHostPort checks "host:port" or ":port": the port is a number from 0
// to 65535 (0: any free port, for tests) and the host, when given, is an IP
// or a DNS name.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if _, err := parsePort(port); err != nil {
		return err
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("invalid host %q", host)
	}
	return nil
}

// parsePort parses a numeric port, 0 to 65535.
func parsePort(port string) (int, error) {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || strings.HasPrefix(port, "+") {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return n, nil
}

// listenKey returns the key under which two listen addresses clash: the
// wildcard hosts "", 0.0.0.0 and :: are one. Port 0 never clashes.
func listenKey(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return "", false
	}
	switch host = strings.ToLower(host); host {
	case "", "0.0.0.0", "::":
		host = "*"
	}
	return net.JoinHostPort(host, port), true
}

// validHost reports whether h is an IP address or a DNS name.
func validHost(h string) bool {
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		a, err := netip.ParseAddr(h[1 : len(h)-1])
		return err == nil && a.Is6()
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return validDNSName(h)
}

// validHostPattern reports whether h is a route host: a host, or "*."
// followed by a DNS name.
func validHostPattern(h string) bool {
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		return validDNSName(rest)
	}
	return validHost(h)
}

// validDNSName reports whether s is a DNS name of letters, digits, hyphens
// and underscores (seen in internal names), case-insensitive. A name that
// looks like a mistyped IP (all labels numeric) is refused.
func validDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	numeric := true
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i] | 0x20 // lower case for letters
			switch {
			case c >= 'a' && c <= 'z', label[i] == '-', label[i] == '_':
				numeric = false
			case label[i] >= '0' && label[i] <= '9':
			default:
				return false
			}
		}
	}
	return !numeric
}

// validToken reports whether s is an HTTP token (RFC 9110 5.6.2), the
// syntax of methods and header names.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// validKey reports whether key is one of the plain forms, or one of the
// prefixed forms followed by a valid name.
func validKey(key string, plain []string, prefixed []string) bool {
	for _, p := range plain {
		if key == p {
			return true
		}
	}
	for _, p := range prefixed {
		if name, ok := strings.CutPrefix(key, p); ok {
			if p == KeyQueryPrefix {
				return name != "" && !strings.ContainsAny(name, "&=# ")
			}
			return validToken(name)
		}
	}
	return false
}

// checkTargetURL checks a target: http or https, a host, an optional
// numeric port, and nothing else, since the request's own path is sent.
func checkTargetURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New(`scheme must be http or https`)
	case u.Opaque != "" || u.Host == "":
		return errors.New("host is missing")
	case u.User != nil:
		return errors.New("user info is not allowed")
	case u.Path != "" && u.Path != "/":
		return errors.New("a path is not allowed (the request's path is sent as is)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("a query or fragment is not allowed")
	case !validHost(u.Hostname()):
		return fmt.Errorf("invalid host %q", u.Hostname())
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := parsePort(p); err != nil || n == 0 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
	}
	return nil
}

// hideUserinfo returns a URL for an error message with any user info
// (user:password@) replaced: an error is logged and shown by the admin API,
// and a refused URL may still carry a real password.
func hideUserinfo(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		rest = raw
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return raw
	}
	start := len(raw) - len(rest)
	return raw[:start] + "REDACTED" + raw[start+at:]
}

// checkStatusRange checks "200" or "200-399" within 100-599.
func checkStatusRange(s string) error {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	a, errA := strconv.Atoi(lo)
	b, errB := strconv.Atoi(hi)
	if errA != nil || errB != nil || a < 100 || b > 599 || a > b {
		return fmt.Errorf(`invalid status %q (want e.g. "200" or "200-399", within 100-599)`, s)
	}
	return nil
}
