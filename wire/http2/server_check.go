package http2

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

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }
