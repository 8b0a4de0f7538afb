package http2

// isToken reports whether s is an RFC 9110 token (a method).
func isToken(s string) bool {
	for i := range len(s) {
		c := s[i]
		if c >= 0x80 || !tokenChars[c] {
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

// validTarget reports whether a :path can stand as the request target of
// an HTTP/1.1 request line: visible ASCII only (no space to split the line
// on, no control), no fragment (RFC 9113 section 8.3.1). x/net has already
// refused an empty :path, one not starting with "/" (but "*"), and bad
// percent-escapes.
func validTarget(s string) bool {
	for i := range len(s) {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return len(s) > 0
}

// validHost reports whether s is host[:port]: a registered name (letters,
// digits, - . _ ~ and percent-escapes), an IPv4 address or a bracketed
// IPv6 literal, then optionally a colon and digits; the same rule as the
// HTTP/1.1 side's Host check. x/net's own check lets through characters
// such as ! $ ' * , ; =.
func validHost(s string) bool {
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
			if c := s[i]; !(c == ':' || c == '.' || isHex(c)) {
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

func validPort(s string) bool {
	if len(s) == 0 {
		return true
	}
	if s[0] != ':' || len(s) > 6 {
		return false
	}
	return len(s) == 1 || isDigits(s[1:])
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }
