package proxy

import (
	"crypto/sha256"
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// adminAccess is what a request to the admin API (beyond the probes) must
// satisfy, built from the admin section once per config:
//
//   - its Host is localhost, an IP literal, the host of admin.address or a
//     name of admin.hosts: a page whose DNS name was rebound to the admin
//     listener's address sends its own name and is refused (403);
//   - it is not a browser's cross-origin request (Sec-Fetch-Site, then
//     Origin against Host), when its method can change state;
//   - it carries the bearer token when one is set (401 otherwise);
//   - without a token, a state-changing method must come with
//     Content-Type: application/json, which a cross-site form or a no-cors
//     fetch cannot send without a CORS preflight, and the admin API
//     answers no preflight (415 otherwise).
type adminAccess struct {
	// token is the SHA-256 of the bearer token; nil when none is required.
	// Comparing digests keeps the comparison constant-time whatever the
	// length presented.
	token *[sha256.Size]byte
	// hosts are the names accepted in Host besides localhost and IP
	// literals, in lower case without a trailing dot.
	hosts map[string]bool
}

// adminCrossOrigin refuses a state-changing request that a browser marks
// as cross-origin: Sec-Fetch-Site other than same-origin or none, or else
// an Origin whose host:port is not the request's Host. Requests from
// non-browser clients carry neither header and pass.
var adminCrossOrigin = http.NewCrossOriginProtection()

func newAdminAccess(cfg *config.Admin) *adminAccess {
	acc := &adminAccess{hosts: map[string]bool{}}
	if cfg.Token != "" {
		sum := sha256.Sum256([]byte(cfg.Token))
		acc.token = &sum
	}
	if host, _, err := net.SplitHostPort(cfg.Address); err == nil && host != "" {
		acc.hosts[hostKey(host)] = true
	}
	for _, h := range cfg.Hosts {
		acc.hosts[hostKey(h)] = true
	}
	return acc
}

// hostKey normalizes a host name for comparison.
func hostKey(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostAllowed reports whether a request with this Host header may be
// served. IP literals are safe: DNS rebinding needs a name that the
// attacker's DNS answers, and a browser sends that name as the Host. So is
// no host at all (HTTP/1.0), which no browser sends.
func (acc *adminAccess) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "" {
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = hostKey(host)
	return host == "localhost" || acc.hosts[host]
}

// authorized reports whether r carries the bearer token, or none is set.
func (acc *adminAccess) authorized(r *http.Request) bool {
	if acc.token == nil {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], acc.token[:]) == 1
}

// safeMethod reports whether method cannot change state (the methods
// CrossOriginProtection lets through).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// jsonContent reports whether r declares a JSON body, which no simple
// (preflight-free) cross-origin request can.
func jsonContent(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}
