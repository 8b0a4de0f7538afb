//go:build !rampart_stdrx

package waf

import (
	"regexp"
	"sync"
	"testing"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"rsc.io/binaryregexp"
)

// captureState records what @rx captures.
type captureState struct {
	plugintypes.TransactionState
	capturing bool
	fields    map[int]string
}

func (s *captureState) Capturing() bool { return s.capturing }
func (s *captureState) CaptureField(i int, v string) {
	s.fields[i] = v
}

// TestRXMatchesGoRegexp compares the RE2 operator with Go's regexp, with
// and without capture, on valid and invalid UTF-8.
func TestRXMatchesGoRegexp(t *testing.T) {
	patterns := []string{
		`(?i)union\s+(all\s+)?select`,
		`^(\w+)=(\d+)?$`,
		`\bselect\b`,
		`(?i)<script[^>]*>`,
		`[\x{100}-\x{10ffff}]`,
		`é+`,
		`^$`,
	}
	inputs := []string{
		"", "a=1", "a=", "1 UNION ALL SELECT x", "SELECT", "<SCRIPT src=x>", "line1\nline2=3",
		"caf\xe9 union select", "\xff\xfe<script>", "ééé", "π", "x\n",
	}
	for _, p := range patterns {
		op, err := newRX(plugintypes.OperatorOptions{Arguments: p})
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		std := regexp.MustCompile("(?sm)" + p)
		for _, in := range inputs {
			for _, capture := range []bool{false, true} {
				st := &captureState{capturing: capture, fields: map[int]string{}}
				got := op.Evaluate(st, in)
				want := std.FindStringSubmatchIndex(in)
				if got != (want != nil) {
					t.Errorf("%q on %q (capture %v): got %v; want %v", p, in, capture, got, want != nil)
					continue
				}
				if !capture || want == nil {
					continue
				}
				for i := 0; i < len(want)/2 && i < 9; i++ {
					w := ""
					if want[2*i] >= 0 {
						w = in[want[2*i]:want[2*i+1]]
					}
					if st.fields[i] != w {
						t.Errorf("%q on %q: TX.%d %q; want %q", p, in, i, st.fields[i], w)
					}
				}
			}
		}
	}
}

func TestRXBytePattern(t *testing.T) {
	op, err := newRX(plugintypes.OperatorOptions{Arguments: `\xff\xfe`})
	if err != nil {
		t.Fatal(err)
	}
	st := &captureState{fields: map[int]string{}}
	if !op.Evaluate(st, "a\xff\xfeb") || op.Evaluate(st, "abc") {
		t.Fatal("byte pattern: wrong result")
	}
}

// TestRXInvalidPattern: a pattern Go's regexp refuses is refused when the
// operator is built, with regexp.Compile's error, not when a value needs it.
func TestRXInvalidPattern(t *testing.T) {
	for _, p := range []string{`(?i)union(`, `a{2,1}`, `[z-a]`, `\8`} {
		_, err := newRX(plugintypes.OperatorOptions{Arguments: p})
		_, want := regexp.Compile("(?sm)" + p)
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("%q: error %v; want %v", p, err, want)
		}
	}
}

// TestRXLazyStdConcurrent: values that are not UTF-8 reach Go's regexp,
// compiled on first use, from many goroutines at once (run with -race).
func TestRXLazyStdConcurrent(t *testing.T) {
	op, err := newRX(plugintypes.OperatorOptions{Arguments: `(?i)union\s+select\s+(\w+)`})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &captureState{capturing: true, fields: map[int]string{}}
			if !op.Evaluate(st, "\xff UNION SELECT pw") || st.fields[1] != "pw" {
				errs <- "no match or wrong capture on an invalid UTF-8 value"
			}
			if op.Evaluate(st, "\xff union all") {
				errs <- "a match where there is none"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestByteLiteral: a byte matcher's pattern that is a plain string of
// bytes turns away values without it, and only those.
func TestByteLiteral(t *testing.T) {
	cases := []struct {
		pattern, lit string
		values       []string
	}{
		{`\xac\xed\x00\x05`, "\xac\xed\x00\x05", []string{"", "\xac\xed\x00", "a\xac\xed\x00\x05b", "\xac\xed\x00\x06"}},
		{`\xac\xed|x`, "", []string{"x", "\xac\xed"}},
		{`(?i)\xffab`, "", []string{"\xffAB", "\xffab"}},
		{`\xff+`, "", []string{"\xff\xff"}},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			if got := byteLiteral(c.pattern); got != c.lit {
				t.Fatalf("byteLiteral = %q; want %q", got, c.lit)
			}
			op, err := newRX(plugintypes.OperatorOptions{Arguments: c.pattern})
			if err != nil {
				t.Fatal(err)
			}
			re := binaryregexp.MustCompile(c.pattern)
			for _, v := range c.values {
				st := &captureState{fields: map[int]string{}}
				if got, want := op.Evaluate(st, v), re.MatchString(v); got != want {
					t.Errorf("Evaluate(%q) = %v; the byte matcher says %v", v, got, want)
				}
			}
		})
	}
}

// TestMatchesWhole: .* patterns are answered without an engine, with the
// match Go's regexp finds; others are not taken for them.
func TestMatchesWhole(t *testing.T) {
	tests := []struct {
		pattern string
		want    bool
	}{
		{"^.*$", true},
		{".*", true},
		{"^.*", true},
		{".*$", true},
		{"^.*?$", false},
		{"^.+$", false},
		{"^a.*$", false},
		{"^.*$|x", false},
		{"(.*)", false},
		{"^[^x]*$", false},
	}
	for _, tt := range tests {
		if got := matchesWhole("(?sm)" + tt.pattern); got != tt.want {
			t.Errorf("matchesWhole(%q) = %v; want %v", tt.pattern, got, tt.want)
		}
	}
	for _, p := range []string{"^.*$", ".*", "^.*", ".*$"} {
		re := regexp.MustCompile("(?sm)" + p)
		for _, v := range []string{"", "x", "a\nb", "\n", "héllo\r\n", "\xff\xfe"} {
			m := re.FindStringSubmatchIndex(v)
			if len(m) != 2 || m[0] != 0 || m[1] != len(v) {
				t.Errorf("Go's regexp %q on %q: %v; want [0 %d], what the whole fast path answers", p, v, m, len(v))
			}
		}
	}
}
