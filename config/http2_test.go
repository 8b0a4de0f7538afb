package config

import (
	"slices"
	"strconv"
	"testing"
)

// TestProtocolsAndHTTP2Errors has one case per error of
// listeners.NAME.protocols and listeners.NAME.http2, each on the line
// marked "# <-".
func TestProtocolsAndHTTP2Errors(t *testing.T) {
	const tlsLis = "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      certificates: [{cert_file: a, key_file: b}]\n"
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"unknown protocol", lis + "    protocols: [http1, http3] # <-\n" + ups + rts, `listeners.web.protocols[1]: unknown protocol "http3" (want http1, h2 or h2c)`},
		{"h2 without tls", lis + "    protocols: [h2] # <-\n" + ups + rts, `listeners.web.protocols[0]: "h2" needs tls (HTTP/2 in cleartext is "h2c")`},
		{"h2c with tls", tlsLis + "    protocols:\n      - http1\n      - h2c # <-\n" + ups + rts, `listeners.web.protocols[1]: "h2c" is for listeners without tls (over TLS, HTTP/2 is "h2")`},
		{"no protocol", lis + "    protocols: [] # <-\n" + ups + rts, "listeners.web.protocols: at least one protocol is required (http1, h2 or h2c)"},
		{"protocol twice", lis + "    protocols: [http1, http1] # <-\n" + ups + rts, `listeners.web.protocols[1]: "http1" is listed twice`},
		{"negative streams per ip", lis + "    http2:\n      max_streams_per_ip: -1 # <-\n" + ups + rts, "listeners.web.http2.max_streams_per_ip: -1 must not be negative"},
		{"negative resets", lis + "    http2:\n      max_resets_per_second: -5 # <-\n" + ups + rts, "listeners.web.http2.max_resets_per_second: -5 must not be negative"},
		{"header list too small", lis + "    http2:\n      max_header_list_size: 100 # <-\n" + ups + rts, "listeners.web.http2.max_header_list_size: 100 bytes must be from 1KiB to 1GiB"},
		{"unknown http2 field", lis + "    http2:\n      max_streams: 5 # <-\n" + ups + rts, "listeners.web.http2.max_streams: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := parseErrors(t, tt.src)
			line := markedLine(tt.src)
			want := "rampart.yaml:" + strconv.Itoa(line) + ": " + tt.want
			if len(errs) != 1 || errs[0].Error() != want {
				t.Errorf("got %d errors:\n%v\nwant 1:\n%s", len(errs), errs, want)
			}
		})
	}
}

// TestProtocolsAndHTTP2Defaults checks the default protocols of TLS and
// plain listeners, that an explicit list is kept, and the HTTP/2 limits'
// defaults.
func TestProtocolsAndHTTP2Defaults(t *testing.T) {
	const tlsLis = "listeners:\n  web:\n    address: \":8443\"\n    tls:\n      certificates: [{cert_file: a, key_file: b}]\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"plain", lis, []string{"http1"}},
		{"tls", tlsLis, []string{"h2", "http1"}},
		{"plain with h2c", lis + "    protocols: [h2c, http1]\n", []string{"h2c", "http1"}},
		{"h2c only", lis + "    protocols: [h2c]\n", []string{"h2c"}},
		{"tls http1 only", tlsLis + "    protocols: [http1]\n", []string{"http1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.src+ups+rts), "rampart.yaml")
			if err != nil {
				t.Fatal(err)
			}
			l := c.Listeners["web"]
			if !slices.Equal(l.Protocols, tt.want) {
				t.Errorf("got protocols %q; want %q", l.Protocols, tt.want)
			}
			h := l.HTTP2
			want := HTTP2{
				MaxConcurrentStreams: DefaultHTTP2MaxConcurrentStreams, MaxHeaderListSize: DefaultHTTP2MaxHeaderListSize,
				MaxStreamsPerConnection: DefaultHTTP2MaxStreamsPerConnection, MaxStreamsPerIP: DefaultHTTP2MaxStreamsPerIP,
				MaxResetsPerSecond: DefaultHTTP2MaxResetsPerSecond, MaxControlFramesPerSecond: DefaultHTTP2MaxControlFramesPerSecond,
			}
			if h != want {
				t.Errorf("got http2 %+v; want %+v", h, want)
			}
		})
	}
}
