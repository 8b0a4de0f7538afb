package cache

import (
	"bytes"
	"time"
)

// Header is read-only access to a request's or a response's header
// fields: every field of a name, in order (fasthttp.RequestHeader and
// fasthttp.ResponseHeader satisfy it).
type Header interface {
	PeekAll(key string) [][]byte
}

// Directives are the Cache-Control directives of a request or a response
// (RFC 9111 section 5.2). A duration directive is -1 when absent.
type Directives struct {
	MaxAge, SMaxAge                 int64 // seconds
	StaleWhileRevalidate            int64 // seconds (RFC 5861)
	StaleIfError                    int64 // seconds (RFC 5861)
	MaxStale, MinFresh              int64 // seconds (request)
	NoStore, NoCache, Private       bool
	Public                          bool
	MustRevalidate, ProxyRevalidate bool
	OnlyIfCached                    bool
	// MaxStaleAny is a request's max-stale without a value: any staleness.
	MaxStaleAny bool
}

// ParseControl parses every Cache-Control field of h. A directive given
// twice keeps its first value; an invalid duration counts as 0 (stale at
// once), the conservative reading RFC 9111 section 4.2.1 asks for.
func ParseControl(h Header) Directives {
	d := Directives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MaxStale: -1, MinFresh: -1}
	for _, v := range h.PeekAll("Cache-Control") {
		d.parse(v)
	}
	return d
}

func (d *Directives) parse(v []byte) {
	for len(v) > 0 {
		var item []byte
		item, v = nextItem(v)
		name, arg := item, []byte(nil)
		if i := bytes.IndexByte(item, '='); i >= 0 {
			name, arg = trim(item[:i]), trim(item[i+1:])
			if n := len(arg); n >= 2 && arg[0] == '"' && arg[n-1] == '"' {
				arg = arg[1 : n-1]
			}
		}
		switch {
		case eq(name, "max-age"):
			setSeconds(&d.MaxAge, arg)
		case eq(name, "s-maxage"):
			setSeconds(&d.SMaxAge, arg)
		case eq(name, "stale-while-revalidate"):
			setSeconds(&d.StaleWhileRevalidate, arg)
		case eq(name, "stale-if-error"):
			setSeconds(&d.StaleIfError, arg)
		case eq(name, "min-fresh"):
			setSeconds(&d.MinFresh, arg)
		case eq(name, "max-stale"):
			if arg == nil {
				d.MaxStaleAny = true
			} else {
				setSeconds(&d.MaxStale, arg)
			}
		case eq(name, "no-store"):
			d.NoStore = true
		case eq(name, "no-cache"):
			// The qualified form (no-cache="Set-Cookie") is treated as
			// the unqualified one, as section 5.2.2.4 allows.
			d.NoCache = true
		case eq(name, "private"):
			// Likewise private="field": a shared cache stores nothing.
			d.Private = true
		case eq(name, "public"):
			d.Public = true
		case eq(name, "must-revalidate"):
			d.MustRevalidate = true
		case eq(name, "proxy-revalidate"):
			d.ProxyRevalidate = true
		case eq(name, "only-if-cached"):
			d.OnlyIfCached = true
		}
	}
}

// nextItem splits the first comma-separated item off v, minding quotes.
func nextItem(v []byte) (item, rest []byte) {
	quoted := false
	for i, c := range v {
		switch {
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return trim(v[:i]), v[i+1:]
		}
	}
	return trim(v), nil
}

// maxSeconds bounds delta-seconds (RFC 9111 section 1.2.2: 2^31 at most).
const maxSeconds = 1 << 31

// setSeconds sets *dst from delta-seconds unless it is already set.
func setSeconds(dst *int64, arg []byte) {
	if *dst >= 0 {
		return
	}
	n := int64(0)
	if len(arg) == 0 {
		*dst = 0
		return
	}
	for _, c := range arg {
		if c < '0' || c > '9' {
			*dst = 0
			return
		}
		if n < maxSeconds {
			n = n*10 + int64(c-'0')
		}
	}
	*dst = min(n, maxSeconds)
}

func trim(b []byte) []byte { return bytes.TrimSpace(b) }

// eq compares a token with a lowercase name, case-insensitively.
func eq(b []byte, name string) bool {
	if len(b) != len(name) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// seconds converts delta-seconds to a duration.
func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// first returns the first field of name in h, nil when there is none.
func first(h Header, name string) []byte {
	if all := h.PeekAll(name); len(all) > 0 {
		return all[0]
	}
	return nil
}
