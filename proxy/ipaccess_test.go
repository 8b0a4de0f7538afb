package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"

	"github.com/gaissmai/bart"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// TestAccessVerdict: deny wins over allow; an empty allow list admits
// everyone; bare addresses and CIDRs, IPv4 and IPv6, mapped addresses.
func TestAccessVerdict(t *testing.T) {
	a := &ipAccess{allow: prefixSet([]string{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}),
		deny: prefixSet([]string{"10.9.0.0/16", "2001:db8:bad::/48"})}
	denyOnly := &ipAccess{deny: prefixSet([]string{"198.51.100.0/24"})}
	tests := []struct {
		name   string
		a      *ipAccess
		client string
		want   int
	}{
		{"in allow", a, "10.1.2.3", -1},
		{"bare address in allow", a, "192.0.2.7", -1},
		{"next to the bare address", a, "192.0.2.8", metrics.DeniedNotAllowed},
		{"IPv6 in allow", a, "2001:db8::1", -1},
		{"deny wins", a, "10.9.0.1", metrics.DeniedDenyList},
		{"IPv6 deny wins", a, "2001:db8:bad::1", metrics.DeniedDenyList},
		{"mapped IPv4", a, "::ffff:10.9.0.1", metrics.DeniedDenyList},
		{"outside allow", a, "172.16.0.1", metrics.DeniedNotAllowed},
		{"deny only: denied", denyOnly, "198.51.100.9", metrics.DeniedDenyList},
		{"deny only: admitted", denyOnly, "203.0.113.1", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := &exchange{clientIP: netip.MustParseAddr(tt.client)}
			if got := tt.a.verdict(x); got != tt.want {
				t.Errorf("got %d; want %d", got, tt.want)
			}
		})
	}
}

// TestAccessLookupAllocs: the allow/deny lookup allocates nothing.
func TestAccessLookupAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	a := &ipAccess{allow: prefixSet([]string{"10.0.0.0/8", "2001:db8::/32"}), deny: prefixSet([]string{"10.9.0.0/16"})}
	for _, client := range []string{"10.1.2.3", "10.9.1.1", "2001:db8::1", "203.0.113.1"} {
		x := &exchange{clientIP: netip.MustParseAddr(client)}
		if n := testing.AllocsPerRun(1000, func() { a.verdict(x) }); n != 0 {
			t.Errorf("%s: got %v allocations per lookup; want 0", client, n)
		}
	}
}

// TestAccessRequestAllocs is TestWholeRequestAllocs on a route with allow
// and deny lists and a CORS policy, for a request from an allowed origin:
// the access checks and the CORS fields add no allocation.
func TestAccessRequestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  u: {targets: [{url: "http://%s"}]}
cors:
  web: {allow_origins: ["https://app.example.com", "https://*.example.net"], allow_credentials: true, expose_headers: [X-Total]}
routes:
  - upstream: u
    allow: [127.0.0.0/8]
    deny: [10.0.0.0/8]
    cors: web
access_log: {path: "off"}
`, benchUpstream(t))), "alloc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	for _, origin := range []string{"https://app.example.com", "https://a.example.net", "https://other.example"} {
		n := requestAllocs(t, srv.Addr("web"), "GET /hello HTTP/1.1\r\nHost: bench.local\r\nOrigin: "+origin+"\r\n\r\n")
		if n > 0 {
			t.Errorf("%s: got %v allocations per request; want 0", origin, n)
		}
	}
}

// randomPrefixes returns n random IPv4 prefixes of /8 to /32.
func randomPrefixes(n int) []netip.Prefix {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]netip.Prefix, n)
	for i := range out {
		var b [4]byte
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		out[i] = netip.PrefixFrom(netip.AddrFrom4(b), 8+r.IntN(25)).Masked()
	}
	return out
}

// BenchmarkIPSet compares the lookup ipAccess uses (bart.Lite) with a scan
// of a prefix slice, by list size: why the lists are bart tables.
func BenchmarkIPSet(b *testing.B) {
	a := netip.MustParseAddr("203.0.113.7")
	for _, n := range []int{1, 4, 16, 64, 1000} {
		ps := randomPrefixes(n)
		var l bart.Lite
		for _, p := range ps {
			l.Insert(p)
		}
		b.Run("scan/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range ps {
					if p.Contains(a) {
						break
					}
				}
			}
		})
		b.Run("bart/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.Contains(a)
			}
		})
	}
}
