package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("192.168.1.1/32"),
	netip.MustParsePrefix("fd00::/8"),
}

func xffLines(lines ...string) [][]byte {
	var out [][]byte
	for _, l := range lines {
		out = append(out, []byte(l))
	}
	return out
}

func TestClientIP(t *testing.T) {
	tests := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{name: "no xff", peer: "203.0.113.9", want: "203.0.113.9"},
		{name: "spoof from untrusted peer", peer: "203.0.113.9", xff: []string{"1.2.3.4"}, want: "203.0.113.9"},
		{name: "spoof from untrusted peer trusted-looking xff", peer: "203.0.113.9", xff: []string{"10.0.0.1"}, want: "203.0.113.9"},
		{name: "no trusted proxies", peer: "10.0.0.1", xff: []string{"1.2.3.4"}, trusted: []netip.Prefix{}, want: "10.0.0.1"},
		{name: "trusted peer no xff", peer: "10.0.0.1", want: "10.0.0.1"},
		{name: "trusted peer one hop", peer: "10.0.0.1", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "client prepends a spoofed hop", peer: "10.0.0.1", xff: []string{"1.1.1.1, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "trusted chain skipped", peer: "10.0.0.1", xff: []string{"1.1.1.1, 198.51.100.7, 10.9.9.9, 192.168.1.1"}, want: "198.51.100.7"},
		{name: "all hops trusted gives left-most", peer: "10.0.0.1", xff: []string{"10.1.1.1, 10.2.2.2"}, want: "10.1.1.1"},
		{name: "several lines are one list", peer: "10.0.0.1", xff: []string{"1.1.1.1", "198.51.100.7, 10.2.2.2", "10.3.3.3"}, want: "198.51.100.7"},
		{name: "untrusted in an earlier line", peer: "10.0.0.1", xff: []string{"198.51.100.7", "10.3.3.3"}, want: "198.51.100.7"},
		{name: "whitespace and empty elements", peer: "10.0.0.1", xff: []string{" ,\t198.51.100.7 ,, 10.2.2.2 , "}, want: "198.51.100.7"},
		{name: "empty line", peer: "10.0.0.1", xff: []string{""}, want: "10.0.0.1"},
		{name: "garbage right-most gives peer", peer: "10.0.0.1", xff: []string{"198.51.100.7, garbage"}, want: "10.0.0.1"},
		{name: "garbage stops at last good hop", peer: "10.0.0.1", xff: []string{"198.51.100.7, unknown, 10.2.2.2"}, want: "10.2.2.2"},
		{name: "garbage left of client ignored", peer: "10.0.0.1", xff: []string{"<script>, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "obfuscated identifier", peer: "10.0.0.1", xff: []string{"_hidden"}, want: "10.0.0.1"},
		{name: "leading zero refused", peer: "10.0.0.1", xff: []string{"198.51.100.07"}, want: "10.0.0.1"},
		{name: "out of range refused", peer: "10.0.0.1", xff: []string{"198.51.100.256"}, want: "10.0.0.1"},
		{name: "zone refused", peer: "10.0.0.1", xff: []string{"fe80::1%eth0"}, want: "10.0.0.1"},
		{name: "ipv4 with port", peer: "10.0.0.1", xff: []string{"198.51.100.7:4711"}, want: "198.51.100.7"},
		{name: "ipv6", peer: "fd00::1", xff: []string{"2001:db8::1"}, want: "2001:db8::1"},
		{name: "ipv6 bracketed with port", peer: "10.0.0.1", xff: []string{"[2001:db8::1]:443"}, want: "2001:db8::1"},
		{name: "ipv6 bracketed", peer: "10.0.0.1", xff: []string{"[2001:DB8::1]"}, want: "2001:db8::1"},
		{name: "ipv6 trusted hop skipped", peer: "fd00::1", xff: []string{"2001:db8::1, fd12::3"}, want: "2001:db8::1"},
		{name: "ipv4 in brackets refused", peer: "10.0.0.1", xff: []string{"[198.51.100.7]"}, want: "10.0.0.1"},
		{name: "ipv6 bad port refused", peer: "10.0.0.1", xff: []string{"[2001:db8::1]:x"}, want: "10.0.0.1"},
		{name: "mapped peer is trusted", peer: "::ffff:10.0.0.1", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "mapped peer unmapped", peer: "::ffff:203.0.113.9", xff: []string{"198.51.100.7"}, want: "203.0.113.9"},
		{name: "mapped hop unmapped and trusted", peer: "10.0.0.1", xff: []string{"198.51.100.7, ::ffff:10.2.2.2"}, want: "198.51.100.7"},
		{name: "single-address trusted prefix", peer: "192.168.1.1", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "neighbour of single address untrusted", peer: "192.168.1.2", xff: []string{"198.51.100.7"}, want: "192.168.1.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trusted := tc.trusted
			if trusted == nil {
				trusted = testTrusted
			}
			peer := netip.MustParseAddr(tc.peer)
			want := netip.MustParseAddr(tc.want)
			if got := clientIP(peer, xffLines(tc.xff...), trusted); got != want {
				t.Errorf("clientIP(%s, %q) = %s; want %s", tc.peer, tc.xff, got, want)
			}
			var lines []string
			for _, l := range tc.xff {
				lines = append(lines, "X-Forwarded-For: "+l)
			}
			h := testHeader(t, "a.test", lines...)
			if got := clientIPFromHeader(peer, h, trusted); got != want {
				t.Errorf("clientIPFromHeader(%s, %q) = %s; want %s", tc.peer, tc.xff, got, want)
			}
		})
	}
}

func TestClientIPFromHeaderNameCase(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	h := testHeader(t, "a.test", "x-forwarded-for: 1.1.1.1", "X-FORWARDED-FOR: 198.51.100.7", "X-Forwarded-Forx: 2.2.2.2")
	want := netip.MustParseAddr("198.51.100.7")
	if got := clientIPFromHeader(peer, h, testTrusted); got != want {
		t.Errorf("clientIPFromHeader = %s; want %s", got, want)
	}
	if got := clientIPFromHeader(peer, nil, testTrusted); got != peer {
		t.Errorf("clientIPFromHeader(nil header) = %s; want %s", got, peer)
	}
}

func TestClientIPAllocs(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.1")
	xff := xffLines("1.1.1.1, 2001:db8::1, 198.51.100.7:80", "garbage", "[2001:db8::2]:443, 10.2.2.2")
	h := testHeader(t, "a.test", "X-Forwarded-For: 1.1.1.1, 2001:db8::1", "x-forwarded-for: 198.51.100.7, 10.2.2.2")
	var got netip.Addr
	if n := testing.AllocsPerRun(100, func() { got = clientIP(peer, xff, testTrusted) }); n != 0 {
		t.Errorf("clientIP allocates %v times per run; want 0", n)
	}
	if want := netip.MustParseAddr("2001:db8::2"); got != want {
		t.Errorf("clientIP = %s; want %s", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { got = clientIPFromHeader(peer, h, testTrusted) }); n != 0 {
		t.Errorf("clientIPFromHeader allocates %v times per run; want 0", n)
	}
	if want := netip.MustParseAddr("198.51.100.7"); got != want {
		t.Errorf("clientIPFromHeader = %s; want %s", got, want)
	}
	host := []byte("[2001:db8::1]:8443")
	if n := testing.AllocsPerRun(100, func() { hostWithoutPort(host) }); n != 0 {
		t.Errorf("hostWithoutPort allocates %v times per run; want 0", n)
	}
}

func TestParseIP(t *testing.T) {
	inputs := []string{
		"0.0.0.0", "255.255.255.255", "1.2.3.4", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3",
		".1.2.3", "1.2.3.", "1.2.3.4 ", "", "::", "::1", "1::", "2001:db8::1", "2001:DB8:0:0:0:0:0:1",
		"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8",
		"1::2::3", ":1::2", "1::2:", "12345::", "fffff::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4",
		"1:2:3:4:5:1.2.3.4", "::1.2.3.4", "1.2.3.4::", "::ffff:1.2.3.04", "::ffff:1.2.3", ":::",
		"g::1", "1:2:3:4:5:6:7:8:", "fe80::1%eth0", "[::1]", "a:b:c:d:e:f:1:2",
	}
	for _, s := range inputs {
		t.Run(s, func(t *testing.T) {
			want, err := netip.ParseAddr(s)
			got, ok := parseIP([]byte(s))
			if ok != (err == nil && want.Zone() == "") || (ok && got != want) {
				t.Errorf("parseIP(%q) = %s, %v; want %s, %v (netip.ParseAddr)", s, got, ok, want, err == nil)
			}
		})
	}
}

func TestHostWithoutPort(t *testing.T) {
	tests := []struct {
		name, host, want string
	}{
		{"empty", "", ""},
		{"name", "a.com", "a.com"},
		{"name and port", "a.com:8080", "a.com"},
		{"trailing dot", "a.com.", "a.com"},
		{"trailing dot and port", "a.com.:8080", "a.com"},
		{"only one trailing dot", "a.com..", "a.com."},
		{"empty port", "a.com:", "a.com"},
		{"upper case kept", "A.Com:1", "A.Com"},
		{"ipv4 and port", "127.0.0.1:80", "127.0.0.1"},
		{"ipv6 and port", "[::1]:80", "::1"},
		{"ipv6 bracketed", "[::1]", "::1"},
		{"ipv6 bare", "::1", "::1"},
		{"ipv6 bare full", "2001:db8::1", "2001:db8::1"},
		{"unclosed bracket", "[::1", "[::1"},
		{"garbage after bracket", "[::1]x", "[::1]x"},
		{"port only", ":80", ""},
		{"dot only", ".", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(hostWithoutPort([]byte(tc.host))); got != tc.want {
				t.Errorf("hostWithoutPort(%q) = %q; want %q", tc.host, got, tc.want)
			}
		})
	}
}

func BenchmarkClientIP(b *testing.B) {
	peer := netip.MustParseAddr("10.0.0.1")
	b.Run("untrusted-peer", func(b *testing.B) {
		untrusted := netip.MustParseAddr("203.0.113.9")
		xff := xffLines("1.1.1.1")
		b.ReportAllocs()
		for b.Loop() {
			clientIP(untrusted, xff, testTrusted)
		}
	})
	b.Run("chain", func(b *testing.B) {
		xff := xffLines("1.1.1.1, 198.51.100.7, 2001:db8::1, 10.2.2.2, 10.3.3.3")
		b.ReportAllocs()
		for b.Loop() {
			clientIP(peer, xff, testTrusted)
		}
	})
	b.Run("header", func(b *testing.B) {
		h := testHeader(b, "a.test", "Accept: */*", "X-Forwarded-For: 1.1.1.1, 198.51.100.7", "x-forwarded-for: "+strings.Repeat("10.0.0.2, ", 3)+"10.0.0.3")
		b.ReportAllocs()
		for b.Loop() {
			clientIPFromHeader(peer, h, testTrusted)
		}
	})
}
