package wire

import "testing"

func TestIsToken(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"GET", true},
		{"X-Custom_1", true},
		{"!#$%&'*+-.^_`|~", true},
		{"", false},
		{"Bad Name", false},
		{"a:b", false},
		{"na\x00me", false},
		{"caf\xc3\xa9", false},
		{"(x)", false},
	}
	for _, tt := range tests {
		if got := IsToken(tt.in); got != tt.want {
			t.Errorf("IsToken(%q): got %v; want %v", tt.in, got, tt.want)
		}
		if got := IsToken([]byte(tt.in)); got != tt.want {
			t.Errorf("IsToken([]byte(%q)): got %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidHost(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"example.com", true},
		{"example.com:8443", true},
		{"example.com:", true},
		{"127.0.0.1:80", true},
		{"[::1]:443", true},
		{"[2001:db8::1]", true},
		{"my_host.internal", true},
		{"xn--caf-dma.example", true},
		{"%65xample.com", true},
		{"", false},
		{":80", false},
		{"example.com:123456", false},
		{"example.com:8o", false},
		{"user@example.com", false},
		{"example.com/path", false},
		{"a.com,b.com", false},
		{"exa mple.com", false},
		{"[::1", false},
		{"[::1]x", false},
		{"[fe80::1%25eth0]", false},
		{"example.com;x", false},
	}
	for _, tt := range tests {
		if got := ValidHost(tt.in); got != tt.want {
			t.Errorf("ValidHost(%q): got %v; want %v", tt.in, got, tt.want)
		}
		if got := ValidHost([]byte(tt.in)); got != tt.want {
			t.Errorf("ValidHost([]byte(%q)): got %v; want %v", tt.in, got, tt.want)
		}
	}
}

func TestEqualFold(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"Content-Type", "content-type", true},
		{"X-FORWARDED-FOR", "x-forwarded-for", true},
		{"abc", "abc", true},
		{"", "", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"[", "{", false}, // 0x5b and 0x7b differ by 0x20 but are not letters
		{"K", "\u212a", false},
	}
	for _, tt := range tests {
		if got := EqualFold(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualFold(%q, %q): got %v; want %v", tt.a, tt.b, got, tt.want)
		}
		if got := EqualFold([]byte(tt.a), tt.b); got != tt.want {
			t.Errorf("EqualFold([]byte(%q), %q): got %v; want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
