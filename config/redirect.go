package config

import "net"

// RedirectListener returns the name of the TLS listener that
// redirect_https sends the plain-HTTP requests of route r to, when TLS
// listeners serve r (those in r.Listeners, or every listener when it is
// empty): the one on port 443 if there is one, so that the https URL needs
// no port; else the first in r.Listeners, or the first by name when
// r.Listeners is empty. ok is false when no TLS listener serves r; such a
// route (a catch-all redirect bound to the plain listeners, say) is
// redirected to the first of RedirectCandidates whose routes match the
// request.
func (c *Config) RedirectListener(r *Route) (name string, ok bool) {
	names := r.Listeners
	if len(names) == 0 {
		names = sortedKeys(c.Listeners)
	}
	return firstTLS(c, names)
}

// RedirectCandidates lists the TLS listeners in the order in which a route
// that no TLS listener serves looks for one whose routes match a request:
// the listeners on port 443 first, then the others, each group by name.
func (c *Config) RedirectCandidates() []string {
	var on443, others []string
	for _, n := range sortedKeys(c.Listeners) {
		l := c.Listeners[n]
		if l == nil || l.TLS == nil {
			continue
		}
		if isPort443(l.Address) {
			on443 = append(on443, n)
		} else {
			others = append(others, n)
		}
	}
	return append(on443, others...)
}

// firstTLS picks among names the TLS listener on port 443, else the first
// TLS listener.
func firstTLS(c *Config, names []string) (string, bool) {
	first := ""
	for _, n := range names {
		l := c.Listeners[n]
		if l == nil || l.TLS == nil {
			continue
		}
		if isPort443(l.Address) {
			return n, true
		}
		if first == "" {
			first = n
		}
	}
	return first, first != ""
}

func isPort443(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "443"
}
