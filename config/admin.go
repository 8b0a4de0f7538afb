package config

import (
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
)

// RedactTag is the struct tag that marks a field holding a secret:
// `redact:"true"`. The admin API's config dump shows such a field as
// "[redacted]" (a string, each element of a list, each value of a map),
// whatever its name. A test walks these types and fails on a field whose
// name suggests a secret and that is neither marked nor reviewed, so a new
// secret cannot leak through the dump unnoticed.
const RedactTag = "redact"

// Secret reports whether field f holds a secret (is marked redact:"true").
func Secret(f reflect.StructField) bool {
	return f.Tag.Get(RedactTag) == "true"
}

// Loopback reports whether the admin listener's address is a loopback one
// (127.0.0.0/8, ::1 or localhost), reachable from this host only. An empty
// host (":9901"), 0.0.0.0, ::, any other IP and any other name are not.
func (a *Admin) Loopback() bool {
	host, _, err := net.SplitHostPort(a.Address)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// admin checks the admin listener: its address, its token, its Host names,
// and that it is not open to the network without a token unless that is
// asked for by name.
func (v *validator) admin() {
	a := v.c.Admin
	if a == nil {
		return
	}
	v.address("admin.address", a.Address)
	v.adminToken(a)
	for i, h := range a.Hosts {
		name := strings.TrimSuffix(h, ".")
		if !validHost(name) || strings.HasPrefix(name, "[") {
			v.errorf("admin.hosts["+strconv.Itoa(i)+"]", "invalid host %q (want a DNS name or an IP, without a port)", h)
		}
	}
	switch {
	case a.Token != "" && a.AllowUnauthenticated:
		v.errorf("admin.allow_unauthenticated", "set token or allow_unauthenticated, not both")
	case a.Token == "" && !a.AllowUnauthenticated && !a.Loopback() && checkHostPort(a.Address) == nil && !v.idx.has("admin.token"):
		// (An empty token written has its own error above.)
		v.errorf("admin.address", "%q is not a loopback address, and no admin.token is set: anyone who reaches it "+
			"could read the config and reload it. Set admin.token (token: ${RAMPART_ADMIN_TOKEN}), listen on "+
			"127.0.0.1, or set admin.allow_unauthenticated: true to serve it without authentication", a.Address)
	}
}

// adminToken refuses a token that would not protect anything: the key
// written with an empty value (an unset secret behind ${NAME} must not turn
// authentication off), or a value no client can send back. Messages never
// show the token.
func (v *validator) adminToken(a *Admin) {
	const p = "admin.token"
	switch {
	case a.Token == "" && v.idx.has(p):
		msg := "is empty, which would turn authentication off"
		if raw, ok := v.idx.rawValue(p); ok && strings.Contains(raw, "${") {
			msg = strconv.Quote(raw) + " expands to an empty string, which would turn authentication off"
		}
		v.errorf(p, "%s; set a token, or remove the key to serve without one on a loopback address", msg)
	case a.Token != strings.TrimSpace(a.Token):
		v.errorf(p, "begins or ends with white space (a secret file's trailing newline?); "+
			"a client's bearer token never matches it")
	case strings.ContainsFunc(a.Token, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		v.errorf(p, "contains a control character, which an HTTP header cannot carry")
	}
}
