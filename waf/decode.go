package waf

import (
	"encoding/base64"
	"html"
	"strings"
	"unicode/utf8"
)

// Bounds of the decoding layer. A value is decoded at most maxDecodeDepth
// times in a row (base64 of a URL-encoded payload is two), into at most
// maxFormsPerValue forms; values longer than maxDecodeValue bytes are
// decoded only in their first maxDecodeValue bytes. A request's forms
// together hold at most maxExpandBytes bytes in at most maxExpandForms
// values: past that the request is refused (rule 9500001), so that padding
// cannot push a payload past the decoder.
const (
	maxDecodeDepth   = 4
	maxFormsPerValue = 8
	maxDecodeValue   = 64 << 10
	maxExpandBytes   = 1 << 20
	maxExpandForms   = 2048
	minBase64Len     = 8
)

// expander decodes the values of one request into the forms an
// application could see, within the request's budget.
type expander struct {
	bytes, forms int  // spent of the budget
	over         bool // the budget ran out: a form was dropped
	seen         []string
	queue, next  []string
}

// expand calls add with every decoded form of v that differs from v and
// from the forms before it: nested URL encoding (with %u and overlong
// UTF-8), JSON and JavaScript escapes, HTML entities, base64 that decodes
// to text, each applied again to the results up to maxDecodeDepth times.
// It never calls add with v itself.
func (e *expander) expand(v string, add func(form string)) {
	if !decodable(v) {
		return
	}
	if len(v) > maxDecodeValue {
		v = v[:maxDecodeValue]
	}
	e.seen = append(e.seen[:0], v)
	e.queue = append(e.queue[:0], v)
	for depth := 0; depth < maxDecodeDepth && len(e.queue) > 0; depth++ {
		e.next = e.next[:0]
		for _, f := range e.queue {
			for d := range decoders {
				if len(e.seen) > maxFormsPerValue {
					return
				}
				g, ok := decoders[d](f, depth)
				if !ok || g == f || contains(e.seen, g) {
					continue
				}
				if e.forms >= maxExpandForms || e.bytes+len(g) > maxExpandBytes {
					e.over = true
					return
				}
				e.forms++
				e.bytes += len(g)
				e.seen = append(e.seen, g)
				e.next = append(e.next, g)
				add(g)
			}
		}
		e.queue, e.next = e.next, e.queue
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// decodable reports cheaply whether any decoder could change v: the common
// plain value (words, numbers, spaces, punctuation) costs one scan.
func decodable(v string) bool {
	if len(v) >= minBase64Len && base64ish(v) {
		return true
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '%' || c == '\\' || c == '&' || c >= 0xc0:
			return true
		case c == ',' || c == ' ' || c == '.':
			// data: URLs, "Basic x", JWTs: a base64 tail or part.
			if i+1+minBase64Len <= len(v) && base64ish(v[i+1:i+1+minBase64Len]) {
				return true
			}
		}
	}
	return false
}

// decoders are tried in order on each form. Each returns the decoded
// value and whether it applied; depth is how many decodings made the
// form (0 for the value as the engine got it).
var decoders = [...]func(s string, depth int) (string, bool){
	decodeURL,
	decodeURLKeepPlus,
	decodePlus,
	decodeEscapes,
	decodeEntities,
	decodeUnicode,
	decodeBase64,
}

// decodeURL undoes one level of percent-encoding: %XX, IIS's %uXXXX, and
// '+' as a space (form encoding), then folds overlong UTF-8 and fullwidth
// forms (decodeUnicode).
func decodeURL(s string, _ int) (string, bool) {
	return percentDecode(s, false)
}

// decodeURLKeepPlus undoes one level of percent-encoding as a path or
// JavaScript's decodeURIComponent does, keeping '+' as itself: a value
// with both '%' and '+' has that form too (1+(2) is not 1 (2)).
func decodeURLKeepPlus(s string, _ int) (string, bool) {
	if strings.IndexByte(s, '+') < 0 {
		return "", false
	}
	return percentDecode(s, true)
}

// percentDecode is decodeURL, with '+' kept as itself when keepPlus.
func percentDecode(s string, keepPlus bool) (string, bool) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return "", false
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	changed := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			changed = true
		case c == '%' && i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') && ishex(s[i+2]) && ishex(s[i+3]) && ishex(s[i+4]) && ishex(s[i+5]):
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			b = utf8.AppendRune(b, r)
			i += 5
			changed = true
		case c == '+' && !keepPlus:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	if !changed {
		return "", false
	}
	out := string(b)
	if u, ok := decodeUnicode(out, 0); ok {
		out = u
	}
	return out, true
}

// decodePlus reads '+' as a space in a form that an earlier decoding made
// (a form-encoded payload inside base64 or double encoding).
func decodePlus(s string, depth int) (string, bool) {
	if depth == 0 || strings.IndexByte(s, '+') < 0 || strings.IndexByte(s, ' ') >= 0 {
		return "", false
	}
	return strings.ReplaceAll(s, "+", " "), true
}

// decodeEscapes undoes JSON and JavaScript string escapes: \uXXXX (with
// surrogate pairs), \u{X...}, \xXX, and the one-letter escapes. Other
// backslashes are kept. A value whose only escapes are escaped
// backslashes has no other form.
func decodeEscapes(s string, _ int) (string, bool) {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return "", false
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	changed := false
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		n := s[i+1]
		switch {
		case n == 'u' && i+5 < len(s) && ishex(s[i+2]) && ishex(s[i+3]) && ishex(s[i+4]) && ishex(s[i+5]):
			r := rune(unhex(s[i+2]))<<12 | rune(unhex(s[i+3]))<<8 | rune(unhex(s[i+4]))<<4 | rune(unhex(s[i+5]))
			i += 5
			if r >= 0xd800 && r < 0xdc00 && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' &&
				ishex(s[i+3]) && ishex(s[i+4]) && ishex(s[i+5]) && ishex(s[i+6]) {
				lo := rune(unhex(s[i+3]))<<12 | rune(unhex(s[i+4]))<<8 | rune(unhex(s[i+5]))<<4 | rune(unhex(s[i+6]))
				if lo >= 0xdc00 && lo < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
					i += 6
				}
			}
			b = utf8.AppendRune(b, r)
			changed = true
		case n == 'u' && i+3 < len(s) && s[i+2] == '{':
			j := i + 3
			var r rune
			for j < len(s) && j < i+10 && ishex(s[j]) {
				r = r<<4 | rune(unhex(s[j]))
				j++
			}
			if j < len(s) && s[j] == '}' && j > i+3 && r <= utf8.MaxRune {
				b = utf8.AppendRune(b, r)
				i = j
				changed = true
			} else {
				b = append(b, c)
			}
		case n == 'x' && i+3 < len(s) && ishex(s[i+2]) && ishex(s[i+3]):
			b = append(b, unhex(s[i+2])<<4|unhex(s[i+3]))
			i += 3
			changed = true
		default:
			if r, ok := shortEscape(n); ok {
				b = append(b, r)
				i++
				// An escaped backslash alone makes no new form: the
				// value already shows the backslash, and a form with
				// one of two removed would invent escape sequences
				// (\\c is a backslash and a c, not \c).
				changed = changed || n != '\\'
			} else {
				b = append(b, c)
			}
		}
	}
	if !changed {
		return "", false
	}
	return string(b), true
}

func shortEscape(c byte) (byte, bool) {
	switch c {
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case '"', '\'', '/', '\\', '`':
		return c, true
	}
	return 0, false
}

// decodeEntities undoes HTML character references, named and numeric,
// with or without the closing semicolon where HTML allows it. A reference
// to '<' before a '?' stays as written: no reader of decoded entities
// takes "<?" for code (an HTML parser reads a bogus comment, and PHP,
// whose open tag it is, never decodes entities), so &lt;? in text is
// text, as the CRS's own tests of 933100 expect.
func decodeEntities(s string, _ int) (string, bool) {
	i := strings.IndexByte(s, '&')
	if i < 0 || i+2 >= len(s) {
		return "", false
	}
	u := html.UnescapeString(s)
	if strings.Count(u, "<?") > strings.Count(s, "<?") {
		u = unescapeKeepingPI(s)
	}
	return u, u != s
}

// unescapeKeepingPI decodes s reference by reference as
// html.UnescapeString does, keeping a reference to '<' that a '?' (as
// written or as a reference) follows.
func unescapeKeepingPI(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for len(s) > 0 {
		i := strings.IndexByte(s, '&')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		s = s[i:]
		ref := s[:refLen(s)]
		d := html.UnescapeString(ref)
		s = s[len(ref):]
		if d == "<" && (strings.HasPrefix(s, "?") || strings.HasPrefix(s, "&") && strings.HasPrefix(html.UnescapeString(s[:refLen(s)]), "?")) {
			d = ref
		}
		b.WriteString(d)
	}
	return b.String()
}

// refLen returns the length of the character reference s starts with
// ('&', then '#' and digits, '#x' and hex digits, or a name; then an
// optional ';'), 1 for a lone '&'.
func refLen(s string) int {
	n := 1
	if n < len(s) && s[n] == '#' {
		n++
		if n < len(s) && (s[n] == 'x' || s[n] == 'X') {
			n++
		}
		for n < len(s) && ishex(s[n]) {
			n++
		}
	} else {
		for n < len(s) && (isLetterByte(s[n]) && s[n] < 0x80 || s[n] >= '0' && s[n] <= '9') {
			n++
		}
	}
	if n < len(s) && s[n] == ';' {
		n++
	}
	return n
}

// decodeUnicode folds the forms some decoders map to ASCII: overlong
// UTF-8 sequences of ASCII characters (C0 AE is '.') and fullwidth forms
// (U+FF0E is '.'), as IIS and Java decoders do.
func decodeUnicode(s string, _ int) (string, bool) {
	i := 0
	for i < len(s) && s[i] < 0xc0 {
		i++
	}
	if i == len(s) {
		return "", false
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	changed := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case (c == 0xc0 || c == 0xc1) && i+1 < len(s) && s[i+1]&0xc0 == 0x80:
			b = append(b, (c&0x1f)<<6|s[i+1]&0x3f)
			i++
			changed = true
		case c == 0xe0 && i+2 < len(s) && s[i+1] >= 0x80 && s[i+1] < 0x82 && s[i+2]&0xc0 == 0x80:
			b = append(b, (s[i+1]&0x3f)<<6|s[i+2]&0x3f)
			i += 2
			changed = true
		case c == 0xef && i+2 < len(s) && (s[i+1] == 0xbc || s[i+1] == 0xbd):
			r, n := utf8.DecodeRuneInString(s[i:])
			if r >= 0xff01 && r <= 0xff5e {
				b = append(b, byte(r-0xff01+0x21))
				i += n - 1
				changed = true
			} else {
				b = append(b, c)
			}
		default:
			b = append(b, c)
		}
	}
	if !changed {
		return "", false
	}
	return string(b), true
}

// decodeBase64 decodes a value that is plausibly base64 (standard or URL
// alphabet, padded or not, at least minBase64Len characters) when it
// decodes to printable text. A value of a few fields (a data: URL, a
// "Basic" credential, a JWT) has its base64 field or fields decoded.
func decodeBase64(s string, _ int) (string, bool) {
	t := strings.TrimSpace(s)
	if len(t) >= minBase64Len && base64ish(t) {
		return b64text(t)
	}
	// The tail after the last ',' or ' ' (data: URLs, "Basic ...").
	if i := strings.LastIndexAny(t, ", "); i >= 0 && len(t)-i-1 >= minBase64Len && base64ish(t[i+1:]) {
		return b64text(t[i+1:])
	}
	// Dot-separated parts (JWT): the parts that decode to text, joined.
	if strings.Count(t, ".") == 2 {
		var out []string
		for _, part := range strings.Split(t, ".") {
			if len(part) >= minBase64Len && base64ish(part) {
				if d, ok := b64text(part); ok {
					out = append(out, d)
				}
			}
		}
		if len(out) > 0 {
			return strings.Join(out, "\n"), true
		}
	}
	return "", false
}

// base64ish reports whether s has only base64 characters of one alphabet,
// '=' padding only at its end, and a length a base64 encoder can give.
func base64ish(s string) bool {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	if len(s)-n > 2 || n%4 == 1 || n == 0 {
		return false
	}
	std, url := false, false
	for i := 0; i < n; i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '+' || c == '/':
			std = true
		case c == '-' || c == '_':
			url = true
		default:
			return false
		}
	}
	return !(std && url)
}

// b64text decodes s and returns the result when it is printable text.
func b64text(s string) (string, bool) {
	s = strings.TrimRight(s, "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	d, err := enc.DecodeString(s)
	if err != nil || !printable(d) {
		return "", false
	}
	return string(d), true
}

// printable reports whether b is UTF-8 text without control characters
// other than tab and line breaks: what base64 of a payload decodes to,
// and what random or binary data (images, keys, ids) almost never does.
func printable(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
