package waf

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Shared by Rampart's @rx (rx.go) and the reference @rx of the
// differential tests, which also build with -tags rampart_stdrx.

// matchesArbitraryBytes reports whether the pattern's \xNN escapes spell
// bytes that are not UTF-8, as Coraza's @rx decides to use its byte
// matcher.
func matchesArbitraryBytes(expr string) bool {
	decoded := make([]byte, 0, len(expr))
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' {
			decoded = append(decoded, c)
			continue
		}
		if i+3 >= len(expr) {
			decoded = append(decoded, expr[i:]...)
			break
		}
		if expr[i+1] != 'x' {
			decoded = append(decoded, expr[i])
			continue
		}
		sub, advance := expr[i:], 3
		if len(sub) >= 6 && sub[2] == '{' {
			if end := strings.IndexByte(sub, '}'); end != -1 {
				sub, advance = `\x`+sub[3:end], end
			}
		}
		v, mb, _, err := strconv.UnquoteChar(sub, 0)
		if err != nil || mb {
			decoded = append(decoded, expr[i])
			continue
		}
		decoded = append(decoded, byte(v))
		i += advance
	}
	return !utf8.Valid(decoded)
}
