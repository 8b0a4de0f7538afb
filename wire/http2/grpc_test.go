package http2

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"hours", "2H", 2 * time.Hour, true},
		{"minutes", "3M", 3 * time.Minute, true},
		{"seconds", "10S", 10 * time.Second, true},
		{"milliseconds", "200m", 200 * time.Millisecond, true},
		{"microseconds", "1000u", time.Millisecond, true},
		{"nanoseconds", "99999999n", 99999999 * time.Nanosecond, true},
		{"zero", "0S", 0, true},
		{"eight digits", "12345678S", 12345678 * time.Second, true},
		{"hours beyond Duration", "99999999H", math.MaxInt64, true},
		{"most minutes", "99999999M", 99999999 * time.Minute, true},
		{"nine digits", "123456789S", 0, false},
		{"no unit", "100", 0, false},
		{"unit only", "S", 0, false},
		{"empty", "", 0, false},
		{"unknown unit", "10s", 0, false},
		{"sign", "-1S", 0, false},
		{"space", "1 S", 0, false},
		{"fraction", "1.5S", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseTimeout([]byte(tt.in))
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseTimeout(%q): got %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseTimeout(f *testing.F) {
	for _, s := range []string{"1H", "200m", "99999999H", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, ok := ParseTimeout([]byte(s)); ok && d < 0 {
			t.Errorf("ParseTimeout(%q) = %v: negative", s, d)
		}
	})
}

func TestIsGRPC(t *testing.T) {
	tests := []struct {
		name, ct string
		want     bool
	}{
		{"plain", "application/grpc", true},
		{"proto", "application/grpc+proto", true},
		{"json", "application/grpc+json", true},
		{"parameter", "application/grpc; charset=utf-8", true},
		{"upper case", "Application/GRPC", true},
		{"grpc-web", "application/grpc-web", false},
		{"grpc-web text", "application/grpc-web-text", false},
		{"prefix only", "application/grp", false},
		{"json", "application/json", false},
		{"none", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h fasthttp.RequestHeader
			h.SetContentType(tt.ct)
			if got := IsGRPC(&h); got != tt.want {
				t.Errorf("IsGRPC(%q): got %v; want %v", tt.ct, got, tt.want)
			}
		})
	}
}

func TestCodeForStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   Code
	}{
		{"bad request", 400, Internal},
		{"auth required", 401, Unauthenticated},
		{"waf block", 403, PermissionDenied},
		{"no route", 404, Unimplemented},
		{"method not allowed", 405, Unimplemented},
		{"client body timeout", 408, DeadlineExceeded},
		{"body too large", 413, ResourceExhausted},
		{"rate limit", 429, ResourceExhausted},
		{"header too large", 431, ResourceExhausted},
		{"internal", 500, Internal},
		{"connect failure", 502, Unavailable},
		{"no healthy target", 503, Unavailable},
		{"upstream timeout", 504, DeadlineExceeded},
		{"other", 418, Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeForStatus(tt.status); got != tt.want {
				t.Errorf("CodeForStatus(%d): got %v; want %v", tt.status, got, tt.want)
			}
		})
	}
}

func TestCodeForError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"none", nil, OK},
		{"connect", &Error{Kind: ErrConnect, Err: errors.New("refused")}, Unavailable},
		{"timeout", &Error{Kind: ErrTimeout, Err: errReadTimeout}, DeadlineExceeded},
		{"reset", &Error{Kind: ErrReset, Err: errors.New("rst")}, Unavailable},
		{"bad response", &Error{Kind: ErrBadResponse, Err: errors.New("bad")}, Unavailable},
		{"canceled", &Error{Kind: ErrCanceled, Err: errors.New("gone")}, Canceled},
		{"bad request", &Error{Kind: ErrBadRequest, Err: errors.New("uri")}, Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeForError(tt.err); got != tt.want {
				t.Errorf("CodeForError(%v): got %v; want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestAppendMessage(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ascii", "no route", "no route"},
		{"percent", "100%", "100%25"},
		{"utf-8", "nö", "n%C3%B6"},
		{"control", "a\r\nb\x00", "a%0D%0Ab%00"},
		{"tilde and space kept", "~ ~", "~ ~"},
		{"del", "\x7f", "%7F"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendMessage(nil, tt.in)); got != tt.want {
				t.Errorf("AppendMessage(%q): got %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAnswerGRPC(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		code    string
		message string
	}{
		{"connect failure", 502, "502 Bad Gateway: the upstream could not be reached\n", "14", "502 Bad Gateway: the upstream could not be reached"},
		{"timeout", 504, "504 Gateway Timeout: the upstream did not answer in time\n", "4", "504 Gateway Timeout: the upstream did not answer in time"},
		{"rate limit", 429, "429 Too Many Requests\n", "8", "429 Too Many Requests"},
		{"waf block", 403, "403 Forbidden\nmore lines\n", "7", "403 Forbidden"},
		{"no route", 404, "", "12", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp fasthttp.Response
			resp.SetStatusCode(tt.status)
			resp.Header.SetContentType("text/plain; charset=utf-8")
			resp.Header.Set("Retry-After", "1")
			resp.SetBodyString(tt.body)
			AnswerGRPC(&resp)
			if got := resp.StatusCode(); got != 200 {
				t.Errorf("status: got %d; want 200", got)
			}
			if got := string(resp.Header.ContentType()); got != ContentType {
				t.Errorf("content-type: got %q; want %q", got, ContentType)
			}
			if got := string(resp.Header.Peek(HeaderStatus)); got != tt.code {
				t.Errorf("grpc-status: got %q; want %q", got, tt.code)
			}
			if got := string(resp.Header.Peek(HeaderMessage)); got != tt.message {
				t.Errorf("grpc-message: got %q; want %q", got, tt.message)
			}
			if got := len(resp.Body()); got != 0 {
				t.Errorf("body: got %d bytes; want none", got)
			}
			if got := string(resp.Header.Peek("Retry-After")); got != "1" {
				t.Errorf("Retry-After: got %q; want it kept", got)
			}
		})
	}
	t.Run("2xx left alone", func(t *testing.T) {
		var resp fasthttp.Response
		resp.SetBodyString("hello")
		AnswerGRPC(&resp)
		if got := string(resp.Body()); got != "hello" || len(resp.Header.Peek(HeaderStatus)) != 0 {
			t.Errorf("got body %q, grpc-status %q; want the answer unchanged", got, resp.Header.Peek(HeaderStatus))
		}
	})
}

func TestCodeString(t *testing.T) {
	tests := []struct {
		code Code
		want string
	}{{OK, "OK"}, {Canceled, "CANCELLED"}, {Unavailable, "UNAVAILABLE"}, {Unauthenticated, "UNAUTHENTICATED"}, {Code(99), "CODE(99)"}}
	for _, tt := range tests {
		if got := tt.code.String(); got != tt.want {
			t.Errorf("Code(%d).String(): got %q; want %q", uint32(tt.code), got, tt.want)
		}
	}
}
