package wire

// Text is a field as either wire layer holds it: HTTP/1.1 as bytes in its
// read buffer, HTTP/2 as the strings x/net decoded.
type Text interface{ ~string | ~[]byte }

// IsToken reports whether s is an RFC 9110 token: a method, or a field
// name.
func IsToken[T Text](s T) bool {
	for i := range len(s) {
		if c := s[i]; c >= 0x80 || !tokenChars[c] {
			return false
		}
	}
	return len(s) > 0
}

var tokenChars = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// ValidHost reports whether s is host[:port]: a registered name (letters,
// digits, - . _ ~ and percent-escapes), an IPv4 address or a bracketed IPv6
// literal, then optionally a colon and at most five digits. No userinfo,
// path, space or list: the rule both wire layers hold Host and :authority
// to, so that the router and an HTTP/1.1 upstream read one host.
func ValidHost[T Text](s T) bool {
	if len(s) == 0 {
		return false
	}
	if s[0] == '[' {
		end := -1
		for i := 1; i < len(s); i++ {
			if s[i] == ']' {
				end = i
				break
			}
		}
		if end < 0 {
			return false
		}
		for i := 1; i < end; i++ {
			if c := s[i]; !(c == ':' || c == '.' || IsHex(c)) {
				return false
			}
		}
		return validPort(s[end+1:])
	}
	i := 0
	for ; i < len(s) && s[i] != ':'; i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '%':
		default:
			return false
		}
	}
	return i > 0 && validPort(s[i:])
}

// validPort reports an empty port, or a colon and at most five digits
// (none: "host:" is allowed, as RFC 3986 allows it).
func validPort[T Text](s T) bool {
	if len(s) == 0 {
		return true
	}
	if s[0] != ':' || len(s) > 6 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsHex reports a hexadecimal digit.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// EqualFold reports whether a and b are equal under ASCII case folding,
// as field names and tokens compare (not Unicode's folding).
func EqualFold[A, B Text](a A, b B) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		c, d := a[i], b[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
