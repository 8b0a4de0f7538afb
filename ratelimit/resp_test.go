package ratelimit

import (
	"errors"
	"testing"
)

func TestReplySize(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  int // the first reply's size
		isErr bool
	}{
		{"simple", "+OK\r\n", 5, false},
		{"error", "-NOSCRIPT No matching script\r\n", 30, false},
		{"integer", ":-42\r\n", 6, false},
		{"bulk", "$3\r\nabc\r\n", 9, false},
		{"null bulk", "$-1\r\n", 5, false},
		{"pair", "*2\r\n:1\r\n:99\r\n", 13, false},
		{"nested", "*2\r\n*1\r\n$1\r\nx\r\n:7\r\n", 19, false},
		{"empty array", "*0\r\n", 4, false},
		{"two replies", "+OK\r\n+OK\r\n", 5, false},
		{"bad type", "?x\r\n", 0, true},
		{"bad length", "$x\r\nabc\r\n", 0, true},
		{"too deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := replySize([]byte(tt.in))
			if (err != nil) != tt.isErr || got != tt.want {
				t.Errorf("replySize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.isErr)
			}
			if tt.isErr {
				return
			}
			// Every proper prefix of a reply is incomplete, not an error.
			for n := 0; n < tt.want; n++ {
				if got, err := replySize([]byte(tt.in[:n])); got != 0 || err != nil {
					t.Errorf("replySize(%q) = %d, %v; want 0, nil (incomplete)", tt.in[:n], got, err)
				}
			}
		})
	}
}

func TestParsePairs(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		calls int
		want  [][2]int64
		err   error // nil: no error; errProtocol: any other error
	}{
		{"one", "*2\r\n:1\r\n:100\r\n", 1, [][2]int64{{1, 100}}, nil},
		{"two", "*4\r\n:0\r\n:5\r\n:1\r\n:0\r\n", 2, [][2]int64{{0, 5}, {1, 0}}, nil},
		{"noscript", "-NOSCRIPT No matching script. Please use EVAL.\r\n", 1, nil, errNoScript},
		{"script error", "-ERR user_script:1: WRONGTYPE\r\n", 1, nil, errProtocol},
		{"count short", "*2\r\n:0\r\n:5\r\n", 2, nil, errProtocol},
		{"count long", "*4\r\n:0\r\n:5\r\n:1\r\n:0\r\n", 1, nil, errProtocol},
		{"not an integer", "*2\r\n$1\r\n1\r\n:5\r\n", 1, nil, errProtocol},
		{"bad integer", "*2\r\n:x\r\n:5\r\n", 1, nil, errProtocol},
		{"simple string", "+OK\r\n", 1, nil, errProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make([]*pipeCall, tt.calls)
			for i := range calls {
				calls[i] = &pipeCall{}
			}
			err := parsePairs([]byte(tt.in), calls)
			switch {
			case tt.err == nil && err != nil:
				t.Fatalf("parsePairs(%q): %v", tt.in, err)
			case tt.err == errNoScript && !errors.Is(err, errNoScript):
				t.Fatalf("parsePairs(%q) = %v; want errNoScript", tt.in, err)
			case tt.err == errProtocol && (err == nil || errors.Is(err, errNoScript)):
				t.Fatalf("parsePairs(%q) = %v; want an error", tt.in, err)
			}
			for i, w := range tt.want {
				if calls[i].vals != w {
					t.Errorf("call %d: %v; want %v", i, calls[i].vals, w)
				}
			}
		})
	}
}

// FuzzReplySize: replies from a broken or hostile server never panic the
// reader, and a size never runs past the input.
func FuzzReplySize(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "*2\r\n:1\r\n:99\r\n", "$3\r\nabc\r\n", "-ERR x\r\n", "*1\r\n$-1\r\n", "$99999999999\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := replySize(b)
		if err == nil && n > len(b) {
			t.Fatalf("replySize(%q) = %d beyond the input", b, n)
		}
		if err == nil && n > 0 {
			calls := []*pipeCall{{}, {}}
			_ = parsePairs(b[:n], calls[:1])
			_ = parsePairs(b[:n], calls)
		}
	})
}
