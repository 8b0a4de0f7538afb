package compress

// Negotiate picks, from offered (in the server's order of preference), the
// coding that accept, an Accept-Encoding field value, rates highest
// (RFC 9110 section 12.5.3): q-values honoured, q=0 refusing a coding,
// "*" standing for every coding the value does not name, "x-gzip" for
// gzip, names compared case-insensitively. Among codings of the same
// q-value the first offered wins. Identity is returned when the client
// asks for none (an empty value, or no field), when it refuses every
// offered coding, or when it rates identity above them. It allocates
// nothing.
func Negotiate(accept []byte, offered []Coding) Coding {
	if len(accept) == 0 {
		return Identity
	}
	var q [numCodings]int // per coding: its q-value in thousandths, -1 when not named
	for i := range q {
		q[i] = -1
	}
	star := -1
	for len(accept) > 0 {
		var item []byte
		item, accept = cutByte(accept, ',')
		name, params := cutByte(item, ';')
		name = trimSpace(name)
		if len(name) == 0 {
			continue
		}
		v, ok := qValue(params)
		if !ok {
			continue // a malformed q: the item is ignored
		}
		switch {
		case eqFold(name, "*"):
			star = v
		case eqFold(name, "gzip"), eqFold(name, "x-gzip"):
			q[Gzip] = max(q[Gzip], v)
		case eqFold(name, "br"):
			q[Brotli] = max(q[Brotli], v)
		case eqFold(name, "zstd"):
			q[Zstd] = max(q[Zstd], v)
		case eqFold(name, "identity"):
			q[Identity] = v
		}
	}
	best, bestQ := Identity, 0
	for _, c := range offered {
		v := q[c]
		if v < 0 {
			v = star // -1 when "*" is absent too: not acceptable
		}
		if v > bestQ {
			best, bestQ = c, v
		}
	}
	if best == Identity {
		return Identity
	}
	idQ := q[Identity]
	if idQ < 0 {
		// Not named: "*" rates it, else it is acceptable at the lowest
		// q, which any accepted coding beats.
		idQ = star
		if idQ < 0 {
			idQ = 1
		}
	}
	if idQ > bestQ {
		return Identity
	}
	return best
}

// qValue parses an item's parameters for q (RFC 9110 section 12.4.2:
// "0" to "1" with up to three decimals), in thousandths; 1000 without one.
func qValue(params []byte) (int, bool) {
	for len(params) > 0 {
		var p []byte
		p, params = cutByte(params, ';')
		p = trimSpace(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') {
			continue
		}
		rest := trimSpace(p[1:])
		if len(rest) == 0 || rest[0] != '=' {
			continue
		}
		return parseQ(trimSpace(rest[1:]))
	}
	return 1000, true
}

func parseQ(s []byte) (int, bool) {
	if len(s) == 0 || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	v := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return v, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v += int(c-'0') * scale
		scale /= 10
	}
	if v > 1000 {
		return 0, false
	}
	return v, true
}

func cutByte(s []byte, sep byte) (before, after []byte) {
	for i, c := range s {
		if c == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

func trimSpace(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// eqFold compares b with the lower-case ASCII s, ignoring b's case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
