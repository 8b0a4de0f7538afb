package config

import (
	"math"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name, in string
		want     time.Duration
		err      string
	}{
		{"seconds", "10s", 10 * time.Second, ""},
		{"compound", "1m30s", 90 * time.Second, ""},
		{"millis", "250ms", 250 * time.Millisecond, ""},
		{"zero", "0", 0, ""},
		{"spaces", " 5s ", 5 * time.Second, ""},
		{"no unit", "30", 0, `invalid duration "30": missing unit (e.g. "30s")`},
		{"negative", "-1s", 0, `invalid duration "-1s": negative`},
		{"garbage", "abc", 0, `invalid duration "abc" (want e.g. "10s", "1m30s", "250ms")`},
		{"empty", "", 0, `invalid duration ""`},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("%s: got error %v; want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got.Std() != tt.want {
			t.Errorf("%s: got %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		name, in string
		want     Size
		err      string
	}{
		{"bytes", "1024", 1024, ""},
		{"zero", "0", 0, ""},
		{"B", "512B", 512, ""},
		{"KB", "10KB", 10000, ""},
		{"MB", "3MB", 3e6, ""},
		{"GB", "2GB", 2e9, ""},
		{"KiB", "16KiB", 16 << 10, ""},
		{"MiB", "1MiB", 1 << 20, ""},
		{"GiB", "2GiB", 2 << 30, ""},
		{"K", "4K", 4 << 10, ""},
		{"M", "1M", 1 << 20, ""},
		{"G", "1G", 1 << 30, ""},
		{"lower case", "16kib", 16 << 10, ""},
		{"space before unit", "16 KiB", 16 << 10, ""},
		{"max", "9223372036854775807", math.MaxInt64, ""},
		{"negative", "-1", 0, `invalid size "-1": negative`},
		{"overflow", "9223372036854775808", 0, `invalid size "9223372036854775808": too large`},
		{"unit overflow", "9000000000GiB", 0, `invalid size "9000000000GiB": too large`},
		{"unknown unit", "10XB", 0, `invalid size "10XB" (want bytes`},
		{"no number", "KiB", 0, `invalid size "KiB" (want bytes`},
		{"fraction", "1.5MiB", 0, `invalid size "1.5MiB" (want bytes`},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("%s: got error %v; want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %d, %v; want %d", tt.name, got, err, tt.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		name, in string
		want     Rate
		err      string
	}{
		{"per second", "100/s", Rate{100, time.Second}, ""},
		{"per minute", "20/m", Rate{20, time.Minute}, ""},
		{"per hour", "1000/h", Rate{1000, time.Hour}, ""},
		{"words", "5/second", Rate{5, time.Second}, ""},
		{"minute word", "5/minute", Rate{5, time.Minute}, ""},
		{"hour word", "5/hour", Rate{5, time.Hour}, ""},
		{"spaces", " 5 / s ", Rate{5, time.Second}, ""},
		{"zero", "0/s", Rate{}, `invalid rate "0/s": count must be a positive integer`},
		{"negative", "-1/s", Rate{}, `invalid rate "-1/s": count must be a positive integer`},
		{"fraction", "1.5/s", Rate{}, `invalid rate "1.5/s": count must be a positive integer`},
		{"no period", "100", Rate{}, `invalid rate "100" (want N/s, N/m or N/h, e.g. "100/s")`},
		{"bad period", "100/d", Rate{}, `invalid rate "100/d": period must be s, m or h`},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%s: got error %v; want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

// TestUnitsUnmarshal checks the unmarshalers through yaml.v3, including
// that their errors are TypeErrors (collected, not fatal) with the line.
func TestUnitsUnmarshal(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
		S Size     `yaml:"s"`
		R Rate     `yaml:"r"`
		N int      `yaml:"n"`
	}
	if err := yaml.Unmarshal([]byte("d: 1m\ns: 16KiB\nr: 3/m\nn: 0\nd2: x\n"), &v); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	if v.D.Std() != time.Minute || v.S != 16<<10 || v.R != (Rate{3, time.Minute}) {
		t.Errorf("got %+v; want 1m, 16KiB, 3/m", v)
	}
	err := yaml.Unmarshal([]byte("d: x\ns: [1]\nr: 1/y\nn: 5\n"), &v)
	te, ok := err.(*yaml.TypeError)
	if !ok || len(te.Errors) != 3 {
		t.Fatalf("got %v; want a TypeError with 3 messages", err)
	}
	for i, prefix := range []string{"line 1: column 4: invalid duration", "line 2: column 4: got a list", "line 3: column 4: invalid rate"} {
		if !strings.HasPrefix(te.Errors[i], prefix) {
			t.Errorf("got %q; want prefix %q", te.Errors[i], prefix)
		}
	}
	if v.N != 5 {
		t.Errorf("got n=%d; want 5: decoding must go on after a bad value", v.N)
	}
}

func TestUnitsString(t *testing.T) {
	tests := []struct {
		name      string
		got, want string
	}{
		{"duration", Duration(90 * time.Second).String(), "1m30s"},
		{"size KiB", Size(16 << 10).String(), "16KiB"},
		{"size MiB", Size(3 << 20).String(), "3MiB"},
		{"size bytes", Size(1000).String(), "1000"},
		{"size zero", Size(0).String(), "0"},
		{"rate s", Rate{100, time.Second}.String(), "100/s"},
		{"rate h", Rate{2, time.Hour}.String(), "2/h"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q; want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestTargetAddress(t *testing.T) {
	tests := []struct{ url, want string }{
		{"http://a:8080", "a:8080"},
		{"http://a", "a:80"},
		{"https://a", "a:443"},
		{"http://[::1]:9000/", "[::1]:9000"},
		{"https://[::1]", "[::1]:443"},
		{"::", ""},
	}
	for _, tt := range tests {
		if got := (Target{URL: tt.url}).Address(); got != tt.want {
			t.Errorf("Address(%q): got %q; want %q", tt.url, got, tt.want)
		}
	}
}

func TestSyntaxHelpers(t *testing.T) {
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"dns name", validHostPattern("api.example.com"), true},
		{"upper case", validHostPattern("API.Example.COM"), true},
		{"wildcard", validHostPattern("*.example.com"), true},
		{"bare wildcard", validHostPattern("*"), false},
		{"inner wildcard", validHostPattern("a.*.com"), false},
		{"ipv4", validHostPattern("10.0.0.1"), true},
		{"ipv6", validHostPattern("::1"), true},
		{"bracketed ipv6", validHostPattern("[::1]"), true},
		{"bad ipv4", validHostPattern("10.0.0.256"), false},
		{"trailing dot", validHostPattern("a.com."), false},
		{"leading hyphen", validHostPattern("-a.com"), false},
		{"long label", validHostPattern(strings.Repeat("a", 64) + ".com"), false},
		{"space", validHostPattern("a b"), false},
		{"token", validToken("X-Canary"), true},
		{"token with space", validToken("X Canary"), false},
		{"token with colon", validToken("X:Y"), false},
		{"empty token", validToken(""), false},
		{"listen port 0", checkHostPort(":0") == nil, true},
		{"listen ipv6", checkHostPort("[::1]:80") == nil, true},
		{"listen named port", checkHostPort(":http") == nil, false},
		{"listen plus port", checkHostPort(":+80") == nil, false},
		{"status", checkStatusRange("200") == nil, true},
		{"status range", checkStatusRange("200-399") == nil, true},
		{"status reversed", checkStatusRange("399-200") == nil, false},
		{"status low", checkStatusRange("99") == nil, false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v; want %v", tt.name, tt.got, tt.want)
		}
	}
}
