package ratelimit

import (
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	p := mustPolicy(t, "per_ip", 100, time.Second, 200)
	if got, want := string(p.AppendPolicyHeader(nil)), `"per_ip";q=200;w=2`; got != want {
		t.Errorf("RateLimit-Policy = %s; want %s", got, want)
	}
	tests := []struct {
		name       string
		d          Decision
		rateLimit  string
		retryAfter string
	}{
		{"fresh", Decision{Allowed: true, Remaining: 199, Reset: 10 * time.Millisecond}, `"per_ip";r=199;t=1`, "1"},
		{"half", Decision{Allowed: true, Remaining: 100, Reset: 1000 * time.Millisecond}, `"per_ip";r=100;t=1`, "1"},
		{"reset rounds up", Decision{Allowed: true, Remaining: 1, Reset: 1990 * time.Millisecond}, `"per_ip";r=1;t=2`, "1"},
		{"last token: t is the wait", Decision{Allowed: true, Remaining: 0, RetryAfter: 10 * time.Millisecond, Reset: 2 * time.Second}, `"per_ip";r=0;t=1`, "1"},
		{"refused", Decision{Remaining: 0, RetryAfter: 2500 * time.Millisecond, Reset: 5 * time.Second}, `"per_ip";r=0;t=3`, "3"},
		{"unavailable", Decision{Unavailable: true, RetryAfter: time.Second}, `"per_ip";r=0;t=1`, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(p.AppendHeader(nil, tt.d)); got != tt.rateLimit {
				t.Errorf("RateLimit = %s; want %s", got, tt.rateLimit)
			}
			if got := string(AppendRetryAfter(nil, tt.d)); got != tt.retryAfter {
				t.Errorf("Retry-After = %s; want %s", got, tt.retryAfter)
			}
		})
	}
}

func TestPolicyHeaderWindow(t *testing.T) {
	tests := []struct {
		n     int64
		per   time.Duration
		burst int
		want  string
	}{
		{10, time.Second, 10, `"p";q=10;w=1`},
		{100, time.Minute, 100, `"p";q=100;w=60`},
		{1000, time.Hour, 10, `"p";q=10;w=36`},
		{1000, time.Second, 1, `"p";q=1;w=1`}, // 1 ms rounds up to 1 s
		{3, time.Second, 4, `"p";q=4;w=2`},
	}
	for _, tt := range tests {
		if got := string(mustPolicy(t, "p", tt.n, tt.per, tt.burst).AppendPolicyHeader(nil)); got != tt.want {
			t.Errorf("%d/%v burst %d: %s; want %s", tt.n, tt.per, tt.burst, got, tt.want)
		}
	}
}

func TestSFString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"per_ip", `"per_ip"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"é\x00", `"???"`},
	}
	for _, tt := range tests {
		if got := string(appendSFString(nil, tt.in)); got != tt.want {
			t.Errorf("appendSFString(%q) = %s; want %s", tt.in, got, tt.want)
		}
	}
}

func TestHeadersDoNotAllocate(t *testing.T) {
	p := mustPolicy(t, "per_ip", 100, time.Second, 200)
	d := Decision{Allowed: true, Remaining: 57, Reset: time.Second}
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() {
		b := p.AppendPolicyHeader(buf[:0])
		b = p.AppendHeader(b[:0], d)
		_ = AppendRetryAfter(b[:0], d)
	}); n != 0 {
		t.Errorf("allocs = %v; want 0", n)
	}
}
