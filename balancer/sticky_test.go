package balancer

import (
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func stickyUp() *config.Upstream {
	return &config.Upstream{Sticky: &config.Sticky{Cookie: "rampart_sticky"}}
}

func TestStickyPins(t *testing.T) {
	ts := targets(1, 1, 1)
	p := pool(t, config.BalancerRoundRobin, ts, stickyUp(), nil)
	if !p.Sticky() {
		t.Fatal("Sticky() = false; want true")
	}
	v := []byte(p.StickyValue(2))
	for i := range 10 {
		if got := p.PickFor(Request{Sticky: v}); got.Index != 2 {
			t.Fatalf("pick %d with target 2's cookie: target %d; want 2", i, got.Index)
		}
	}
	// An unhealthy pinned target is replaced; the new target's value
	// differs, so the proxy rewrites the cookie.
	ts[2].State.SetHealthy(false)
	got := p.PickFor(Request{Sticky: v})
	if got == nil || got.Index == 2 {
		t.Fatalf("pinned target down: got %v; want another target", got)
	}
	if p.StickyValue(got.Index) == string(v) {
		t.Errorf("replacement target has the same cookie value")
	}
	// A retry does not return to the pinned target that just failed.
	ts[2].State.SetHealthy(true)
	if got := p.PickFor(Request{Sticky: v, Tried: Tried(2)}); got == nil || got.Index == 2 {
		t.Errorf("pinned target tried: got %v; want another target", got)
	}
	// An unknown or forged value is a normal pick.
	if got := p.PickFor(Request{Sticky: []byte("forged")}); got == nil {
		t.Errorf("forged cookie: nil pick")
	}
}

func TestStickyValues(t *testing.T) {
	key := []byte("secret")
	a := StickyValue(key, "api", "http://10.0.0.1:80")
	tests := []struct {
		name string
		v    string
		same bool
	}{
		{"same inputs", StickyValue(key, "api", "http://10.0.0.1:80"), true},
		{"other target", StickyValue(key, "api", "http://10.0.0.2:80"), false},
		{"other upstream", StickyValue(key, "api-v2", "http://10.0.0.1:80"), false},
		{"other key", StickyValue([]byte("other"), "api", "http://10.0.0.1:80"), false},
		{"no ambiguity in joining", StickyValue(key, "apihttp:", "//10.0.0.1:80"), false},
	}
	for _, tt := range tests {
		if (tt.v == a) != tt.same {
			t.Errorf("%s: %q vs %q; want same=%v", tt.name, tt.v, a, tt.same)
		}
	}
	if len(a) != 22 || strings.ContainsAny(a, "+/=.:") || strings.Contains(a, "10.0.0.1") {
		t.Errorf("value %q; want 22 opaque base64url characters", a)
	}
}

func TestStickyIndex(t *testing.T) {
	api := pool(t, config.BalancerRoundRobin, targets(1, 1), stickyUp(), nil)
	v2, err := New("api-v2", stickyUp(), targets(1, 1), Options{StickyKey: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	plain := pool(t, config.BalancerRoundRobin, targets(1), nil, nil)
	v := []byte(api.StickyValue(1))
	tests := []struct {
		name string
		p    *Pool
		v    []byte
		want int
	}{
		{"own", api, v, 1},
		{"other upstream's", v2, v, -1},
		{"garbage", api, []byte("x"), -1},
		{"not sticky", plain, v, -1},
	}
	for _, tt := range tests {
		if got := tt.p.StickyIndex(tt.v); got != tt.want {
			t.Errorf("%s: StickyIndex = %d; want %d", tt.name, got, tt.want)
		}
	}
	if plain.StickyValue(0) != "" || api.StickyValue(5) != "" {
		t.Errorf("StickyValue out of range or not sticky: want \"\"")
	}
	if n := testing.AllocsPerRun(100, func() { api.StickyIndex(v) }); n != 0 {
		t.Errorf("StickyIndex: %v allocations; want 0", n)
	}
}

func TestStickyProcessKey(t *testing.T) {
	a, err := New("api", stickyUp(), targets(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New("api", stickyUp(), targets(1), Options{})
	if a.StickyValue(0) != b.StickyValue(0) || a.StickyValue(0) == StickyValue(nil, "api", addr(0)) {
		t.Errorf("process key: values %q, %q; want equal, and keyed", a.StickyValue(0), b.StickyValue(0))
	}
}
