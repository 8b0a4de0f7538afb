package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeJSONString decodes b, which must be one JSON string.
func decodeJSONString(t testing.TB, b []byte) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("not a JSON string: %q: %v", b, err)
	}
	return s
}

// TestAppendURI: whatever bytes a request target holds (the connection
// loop refuses control bytes, but the log must not rely on it), request_uri
// is one valid JSON string that decodes to the target, invalid UTF-8 as
// U+FFFD, with the hidden values replaced.
func TestAppendURI(t *testing.T) {
	r := newQueryRedactor([]string{"token", "Password"})
	tests := []struct {
		name, in, want string
	}{
		{"plain", "/a/b", "/a/b"},
		{"query", "/a?x=1&token=s3&y=2", "/a?x=1&token=[redacted]&y=2"},
		{"name case and encoding", "/a?TOKEN=1&%50assword=2&pass%77ord=3", "/a?TOKEN=[redacted]&%50assword=[redacted]&pass%77ord=[redacted]"},
		{"bad escape in a name is not decoded", "/a?tok%zzen=1&token%=2", "/a?tok%zzen=1&token%=2"},
		{"name alone is kept", "/a?token&token=", "/a?token&token=[redacted]"},
		{"second question mark belongs to the query", "/a?x=?&token=?", "/a?x=?&token=[redacted]"},
		{"quotes and backslashes", `/"\?token="\&"=\`, `/"\?token=[redacted]&"=\`},
		{"control bytes", "/\x00\x01\x1f\x7f?v=\n\r\t", "/\x00\x01\x1f\x7f?v=\n\r\t"},
		{"invalid UTF-8", "/\xff\xc3?v=\xe2\x82&token=\xff", "/\ufffd\ufffd?v=\ufffd\ufffd&token=[redacted]"},
		{"line separators", "/\u2028?v=\u2029", "/\u2028?v=\u2029"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := r.appendURI(nil, []byte(tt.in))
			if got := decodeJSONString(t, out); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
			if bytes.ContainsAny(out, "\n\r") {
				t.Errorf("got %q; want no raw line break in a log line", out)
			}
		})
	}
}

// FuzzAppendURI: for any target, request_uri and query are valid JSON
// strings without raw line breaks, and no value of a hidden parameter
// survives.
func FuzzAppendURI(f *testing.F) {
	for _, s := range []string{"/", "/a?token=x", "/%74oken?%74oken=x&a=b", "/\xff?\x00=\"", "?&&=&token=="} {
		f.Add([]byte(s))
	}
	r := newQueryRedactor([]string{"token"})
	f.Fuzz(func(t *testing.T, target []byte) {
		out := r.appendURI(nil, target)
		got := decodeJSONString(t, out)
		if bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("raw line break in %q", out)
		}
		if utf8.ValidString(string(target)) && !strings.ContainsAny(string(target), "%+") &&
			!strings.Contains(strings.ToLower(string(target)), "token") {
			if got != string(target) {
				t.Fatalf("got %q; want the target %q unchanged", got, target)
			}
		}
		_, q, ok := strings.Cut(got, "?")
		if !ok {
			return
		}
		for _, p := range strings.Split(q, "&") {
			if name, value, ok := strings.Cut(p, "="); ok && strings.EqualFold(name, "token") && value != redactedParam {
				t.Fatalf("%q: value %q of token kept", got, value)
			}
		}
	})
}

// TestAppendURINoAlloc: logging a target with a query, hidden values and
// all, allocates nothing.
func TestAppendURINoAlloc(t *testing.T) {
	r := newQueryRedactor(nil)
	uri := []byte("/search?q=rampart&access_token=abc&page=2&%73ig=x")
	buf := make([]byte, 0, 512)
	n := testing.AllocsPerRun(100, func() {
		buf = r.appendURI(buf[:0], uri)
		_, q, _ := bytes.Cut(uri, questionMark)
		buf = r.appendQuery(buf, q)
	})
	if n != 0 {
		t.Errorf("got %v allocations; want 0", n)
	}
}
