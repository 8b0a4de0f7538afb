package proxy

import (
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func TestCompressible(t *testing.T) {
	var s Server
	r := &route{name: "t", cfg: &config.Route{Compress: true}}
	if err := s.buildCompress(&edgeBuild{cfg: &config.Config{}}, r); err != nil {
		t.Fatal(err)
	}
	c := r.compress
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"text/html", true},
		{"text/html; charset=utf-8", true},
		{"TEXT/Plain", true},
		{"application/json", true},
		{"application/problem+json", true},
		{"application/atom+XML", true},
		{"image/svg+xml", true},
		{"application/javascript; charset=utf-8", true},
		{"text/event-stream", false},
		{"text/event-stream; charset=utf-8", false},
		{"application/grpc", false},
		{"application/grpc+proto", false},
		{"image/png", false},
		{"application/octet-stream", false},
		{"application/jsonx", false},
		{"json", false},
		{"", false},
	} {
		if got := c.compressible([]byte(tc.ct)); got != tc.want {
			t.Errorf("compressible(%q) = %v; want %v", tc.ct, got, tc.want)
		}
	}
}

func TestHasToken(t *testing.T) {
	for _, tc := range []struct {
		v, tok string
		want   bool
	}{
		{"no-transform", "no-transform", true},
		{"public, max-age=60, No-Transform", "no-transform", true},
		{"no-transformx", "no-transform", false},
		{"Origin, Accept-Encoding", "accept-encoding", true},
		{"max-age=no-transform", "no-transform", false},
		{"", "x", false},
	} {
		if got := hasToken([]byte(tc.v), tc.tok); got != tc.want {
			t.Errorf("hasToken(%q, %q) = %v; want %v", tc.v, tc.tok, got, tc.want)
		}
	}
}
