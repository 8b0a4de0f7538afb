package cache

import (
	"bytes"
	"strings"
	"time"
)

// Fields is a stored header read as a Header.
type Fields []Field

// PeekAll returns the values of the fields named key, case-insensitively.
func (fs Fields) PeekAll(key string) [][]byte {
	var out [][]byte
	for _, f := range fs {
		if strings.EqualFold(f.Name, key) {
			out = append(out, []byte(f.Value))
		}
	}
	return out
}

// Refresh returns a copy of e brought up to date by a 304 answer to its
// revalidation (RFC 9111 section 4.3.4): each field the 304 carries
// replaces the stored fields of its name, and freshness starts again from
// the times of the revalidation. h304 holds the 304's fields, filtered as
// an answer's are before they are stored.
func (e *Entry) Refresh(h304 Fields, reqTime, respTime time.Time, lim Limits) *Entry {
	n := *e
	n.Header = make([]Field, 0, len(e.Header)+len(h304))
	for _, f := range e.Header {
		if len(h304.PeekAll(f.Name)) == 0 {
			n.Header = append(n.Header, f)
		}
	}
	n.Header = append(n.Header, h304...)
	n.RequestTime, n.ResponseTime = reqTime, respTime
	n.InitialAge, n.Lifetime, n.WhileRevalidate, n.IfError = 0, 0, 0, 0
	hdr := Fields(n.Header)
	n.Freshness(hdr, ParseControl(hdr), lim)
	return &n
}

// NotModified evaluates a request's If-None-Match (inm) and, without it,
// If-Modified-Since (ims) against the stored answer (RFC 9110 section
// 13.2.2): true means a 304 answers the request.
func (e *Entry) NotModified(inm, ims []byte) bool {
	if e.Status != 200 {
		return false
	}
	if len(inm) > 0 {
		etag := e.Get("etag")
		if etag == "" {
			return false
		}
		return matchWeak(inm, []byte(etag))
	}
	if len(ims) > 0 {
		since := parseDate(ims)
		lm := parseDate([]byte(e.Get("last-modified")))
		return !since.IsZero() && !lm.IsZero() && !lm.After(since)
	}
	return false
}

// matchWeak reports whether the If-None-Match list matches etag by the
// weak comparison.
func matchWeak(list, etag []byte) bool {
	etag = bytes.TrimPrefix(etag, []byte("W/"))
	for len(list) > 0 {
		var tag []byte
		tag, list = nextItem(list)
		if string(tag) == "*" {
			return true
		}
		if bytes.Equal(bytes.TrimPrefix(tag, []byte("W/")), etag) {
			return true
		}
	}
	return false
}
