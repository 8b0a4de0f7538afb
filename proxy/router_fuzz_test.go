package proxy

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// refMatch is a slow, obviously-correct model of router.match: every
// (route, host) pair that matches gets a rank, and the smallest rank wins.
func refMatch(routes []*config.Route, host, path, method string, hdr func(name, value string) bool) int {
	// ASCII folding only: strings.ToLower would turn the Kelvin sign into "k".
	nb := []byte(string(hostWithoutPort([]byte(host))))
	for i, c := range nb {
		if 'A' <= c && c <= 'Z' {
			nb[i] = c + 'a' - 'A'
		}
	}
	name := string(nb)
	best, bestRank := -1, [5]int{}
	for i, rt := range routes {
		m := &rt.Match
		if !strings.HasPrefix(path, m.PathPrefix) {
			continue
		}
		if len(m.Methods) > 0 && !containsString(m.Methods, method) {
			continue
		}
		ok := true
		for k, v := range m.Headers {
			ok = ok && hdr(k, v)
		}
		if !ok {
			continue
		}
		spec := len(m.Headers)
		if len(m.Methods) > 0 {
			spec++
		}
		tier, wild := 3, 0 // any host
		hs := routeHosts(m)
		if len(hs) > 0 {
			tier = 99
		}
		for _, h := range hs {
			switch {
			case h == "*" && name != "":
				if tier > 2 {
					tier, wild = 2, 0
				}
			case strings.HasPrefix(h, "*.") && strings.HasSuffix(name, h[1:]) &&
				len(name) > len(h)-1 && name[len(name)-len(h)] != '.':
				if tier > 1 || (tier == 1 && len(h) > wild) {
					tier, wild = 1, len(h)
				}
			case h == name && name != "":
				tier = 0
			}
		}
		if tier == 99 {
			continue
		}
		rank := [5]int{tier, -wild, -len(m.PathPrefix), -spec, i}
		if best < 0 || less(rank, bestRank) {
			best, bestRank = i, rank
		}
	}
	return best
}

func less(a, b [5]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func FuzzRouterMatch(f *testing.F) {
	for _, tc := range routerCases() {
		name, value, _ := strings.Cut(strings.Join(tc.headers, ""), ": ")
		f.Add([]byte(tc.host), []byte(tc.path), []byte(tc.method), []byte(name), []byte(value))
	}
	f.Add([]byte("[::1"), []byte(""), []byte(""), []byte(""), []byte(""))
	f.Add([]byte("a.b.EXAMPLE.com.:"), []byte("/b"), []byte("POST"), []byte("x-canary"), []byte("true"))
	routes := routerTestRoutes()
	r := newRouter(routes)
	f.Fuzz(func(t *testing.T, host, path, method, hname, hvalue []byte) {
		var h fasthttp.RequestHeader
		h.DisableNormalizing()
		h.SetBytesKV(hname, hvalue)
		got := r.match(host, path, method, &h)
		if got < -1 || got >= len(routes) {
			t.Fatalf("match(%q, %q, %q) = %d; want -1 to %d", host, path, method, got, len(routes)-1)
		}
		if again := r.match(host, path, method, &h); again != got {
			t.Fatalf("match(%q, %q, %q) = %d, then %d; want the same twice", host, path, method, got, again)
		}
		hdr := func(name, value string) bool {
			for k, v := range h.All() {
				if strings.EqualFold(string(k), name) && string(v) == value {
					return true
				}
			}
			return false
		}
		if want := refMatch(routes, string(host), string(path), string(method), hdr); got != want {
			t.Fatalf("match(%q, %q, %q, %q: %q) = %d; want %d (reference)", host, path, method, hname, hvalue, got, want)
		}
	})
}

// refClientIP is a slow model of clientIP: split the joined list, walk it
// from the right with netip.ParseAddr.
func refClientIP(peer netip.Addr, xff []string, trusted []netip.Prefix) netip.Addr {
	peer = peer.Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.WithZone("")) {
				return true
			}
		}
		return false
	}
	if !peer.IsValid() || !isTrusted(peer) {
		return peer
	}
	var entries []string
	for _, e := range strings.Split(strings.Join(xff, ","), ",") {
		if e = strings.Trim(e, " \t"); e != "" {
			entries = append(entries, e)
		}
	}
	client := peer
	for i := len(entries) - 1; i >= 0; i-- {
		a, ok := refParseEntry(entries[i])
		if !ok {
			break
		}
		client = a
		if !isTrusted(a) {
			break
		}
	}
	return client
}

func refParseEntry(e string) (netip.Addr, bool) {
	if host, port, err := net.SplitHostPort(e); err == nil {
		a, err := netip.ParseAddr(host)
		bracketed := strings.HasPrefix(e, "[")
		if err != nil || a.Zone() != "" || a.Is4() == bracketed || port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		a, err := netip.ParseAddr(e[1 : len(e)-1])
		if err != nil || a.Zone() != "" || !a.Is6() {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
	a, err := netip.ParseAddr(e)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func FuzzClientIP(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, "198.51.100.7, 10.2.2.2", "1.1.1.1")
	f.Add([]byte{203, 0, 113, 9}, "198.51.100.7", "")
	f.Add([]byte{10, 0, 0, 1}, "[2001:db8::1]:443, garbage", "fd00::1")
	f.Add([]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "::ffff:10.1.1.1, 2001:db8::1", " ,, ")
	f.Add([]byte{10, 0, 0, 1}, "1.2.3.4:80, [::1]:, [1.2.3.4]", "fe80::1%eth0")
	f.Fuzz(func(t *testing.T, peerBytes []byte, line1, line2 string) {
		peer, _ := netip.AddrFromSlice(peerBytes) // invalid unless 4 or 16 bytes
		xff := []string{line1, line2}
		got := clientIP(peer, [][]byte{[]byte(line1), []byte(line2)}, testTrusted)
		if got != peer.Unmap() {
			seen := false
			for _, e := range strings.Split(line1+","+line2, ",") {
				if a, ok := refParseEntry(strings.Trim(e, " \t")); ok && a == got {
					seen = true
				}
			}
			if !seen {
				t.Fatalf("clientIP(%s, %q) = %s; want the peer or an address of the header", peer, xff, got)
			}
		}
		if want := refClientIP(peer, xff, testTrusted); got != want {
			t.Fatalf("clientIP(%s, %q) = %s; want %s (reference)", peer, xff, got, want)
		}
	})
}

func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "01.2.3.4", "1::2::3", "fe80::1%eth0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := netip.ParseAddr(s)
		got, ok := parseIP([]byte(s))
		if ok != (err == nil && want.Zone() == "") || (ok && got != want) {
			t.Fatalf("parseIP(%q) = %s, %v; want %s, %v (netip.ParseAddr)", s, got, ok, want, err == nil)
		}
		if !strings.ContainsAny(s, "[]") {
			h := hostWithoutPort([]byte(s))
			if len(h) > len(s) || !strings.Contains(s, string(h)) {
				t.Fatalf("hostWithoutPort(%q) = %q; want a part of the input", s, h)
			}
		}
	})
}
