package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Field is one stored header field.
type Field struct{ Name, Value string }

// Entry is one stored answer, or a Vary marker (Status 0, Vary set) that
// says under which request fields the answers for its key vary. An entry
// is never changed once stored: a revalidation stores a new one.
type Entry struct {
	Status int
	// Header holds the answer's end-to-end fields in order, without
	// Content-Length (the body says it) and without the fields a proxy
	// sets per request.
	Header []Field
	Body   []byte
	// RequestTime and ResponseTime are when the request that fetched the
	// answer was sent and when its header came back (RFC 9111 section
	// 4.2.3's request_time and response_time).
	RequestTime, ResponseTime time.Time
	// InitialAge is the corrected initial age; Lifetime the freshness
	// lifetime (section 4.2.1).
	InitialAge, Lifetime time.Duration
	// NoCache says the answer must be revalidated before each use;
	// MustRevalidate that it is never served stale (must-revalidate,
	// proxy-revalidate).
	NoCache, MustRevalidate bool
	// WhileRevalidate and IfError are the stale-while-revalidate and
	// stale-if-error windows (RFC 5861), capped by the policy.
	WhileRevalidate, IfError time.Duration
	// Vary lists the request fields a marker entry's answers vary on,
	// lowercase, in the order the answer named them.
	Vary []string
}

// Marker reports whether e is a Vary marker rather than an answer.
func (e *Entry) Marker() bool { return e.Status == 0 }

// Age is the entry's current age at now (section 4.2.3).
func (e *Entry) Age(now time.Time) time.Duration {
	return e.InitialAge + max(0, now.Sub(e.ResponseTime))
}

// TTL is the time left before the entry turns stale: negative once it
// is (by how long).
func (e *Entry) TTL(now time.Time) time.Duration { return e.Lifetime - e.Age(now) }

// Fresh reports whether the entry may be served without revalidation.
func (e *Entry) Fresh(now time.Time) bool { return !e.NoCache && e.TTL(now) > 0 }

// Get returns the value of the first stored field named name
// (case-insensitively), "" when there is none.
func (e *Entry) Get(name string) string {
	for _, f := range e.Header {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Validated reports whether the entry has a validator to revalidate with.
func (e *Entry) Validated() bool { return e.Get("etag") != "" || e.Get("last-modified") != "" }

// Keep is how long a store should keep the entry: while it is fresh, then
// for as long as a stale copy may still serve (its stale windows), or be
// revalidated (keep, when it has a validator). It is at least a second.
func (e *Entry) Keep(now time.Time, keep time.Duration) time.Duration {
	stale := max(e.WhileRevalidate, e.IfError)
	if e.Validated() {
		stale = max(stale, keep)
	}
	return max(time.Second, e.TTL(now)+stale)
}

// Size is the entry's weight in a store, in bytes: its body, its header
// and a fixed overhead for the structure.
func (e *Entry) Size() int {
	n := 128 + len(e.Body)
	for _, f := range e.Header {
		n += len(f.Name) + len(f.Value) + 32
	}
	for _, v := range e.Vary {
		n += len(v) + 16
	}
	return n
}

// Limits are a policy's caps on what an answer asks for.
type Limits struct {
	// MaxStale caps the stale windows.
	MaxStale time.Duration
}

// Freshness fills e's freshness from the response's header h and its
// directives: the lifetime from s-maxage, max-age or Expires (in that
// order; there are no heuristics), the age from Age and Date.
func (e *Entry) Freshness(h Header, d Directives, lim Limits) {
	date := parseDate(first(h, "Date"))
	if date.IsZero() {
		date = e.ResponseTime
	}
	// Section 4.2.3.
	apparent := max(0, e.ResponseTime.Sub(date))
	ageValue := time.Duration(0)
	if a := first(h, "Age"); a != nil {
		n := int64(-1)
		setSeconds(&n, trim(a))
		ageValue = seconds(n)
	}
	corrected := ageValue + max(0, e.ResponseTime.Sub(e.RequestTime))
	e.InitialAge = max(apparent, corrected)
	// Section 4.2.1, for a shared cache.
	switch {
	case d.SMaxAge >= 0:
		e.Lifetime = seconds(d.SMaxAge)
	case d.MaxAge >= 0:
		e.Lifetime = seconds(d.MaxAge)
	case len(h.PeekAll("Expires")) > 0:
		// An invalid date (such as "0") means already expired.
		if exp := parseDate(first(h, "Expires")); !exp.IsZero() {
			e.Lifetime = max(0, exp.Sub(date))
		}
	}
	e.NoCache = d.NoCache
	e.MustRevalidate = d.MustRevalidate || d.ProxyRevalidate
	if !e.MustRevalidate {
		if d.StaleWhileRevalidate > 0 {
			e.WhileRevalidate = min(seconds(d.StaleWhileRevalidate), lim.MaxStale)
		}
		if d.StaleIfError > 0 {
			e.IfError = min(seconds(d.StaleIfError), lim.MaxStale)
		}
	}
}

func parseDate(b []byte) time.Time {
	if len(b) == 0 {
		return time.Time{}
	}
	t, err := http.ParseTime(string(b))
	if err != nil {
		return time.Time{}
	}
	return t
}

// Cacheable reports whether a shared cache may keep an answer of status
// (RFC 9110 section 15.1's heuristically cacheable codes and the redirects
// that carry explicit freshness). A 206 is not kept: ranges are not
// cached.
func Cacheable(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414, 451, 501:
		return true
	}
	return false
}

// Refusal is why an answer was not stored ("" when it was).
type Refusal string

// The reasons an answer is not stored.
const (
	RefuseRequestNoStore Refusal = "request no-store"
	RefuseNoStore        Refusal = "no-store"
	RefusePrivate        Refusal = "private"
	RefuseStatus         Refusal = "status"
	RefuseAuthorization  Refusal = "authorization"
	RefuseVaryStar       Refusal = "vary *"
	RefuseNoFreshness    Refusal = "no freshness and no validator"
)

// Storable decides whether a shared cache may store the answer (section
// 3) to a GET request whose directives are req: resp are the answer's,
// h its header; authorized says the request carried Authorization,
// which section 3.5 allows to share only when the answer says so
// (public, s-maxage or must-revalidate). An answer with neither explicit
// freshness nor a validator is not stored: without heuristics it would
// be stale at once with nothing to revalidate it with.
func Storable(req, resp Directives, status int, h Header, authorized bool) Refusal {
	switch {
	case req.NoStore:
		return RefuseRequestNoStore
	case resp.NoStore:
		return RefuseNoStore
	case resp.Private:
		return RefusePrivate
	case !Cacheable(status):
		return RefuseStatus
	case authorized && !resp.Public && resp.SMaxAge < 0 && !resp.MustRevalidate:
		return RefuseAuthorization
	}
	for _, v := range h.PeekAll("Vary") {
		for len(v) > 0 {
			var name []byte
			name, v = nextItem(v)
			if string(name) == "*" {
				return RefuseVaryStar
			}
		}
	}
	explicit := resp.SMaxAge > 0 || (resp.SMaxAge < 0 && resp.MaxAge > 0) ||
		(resp.SMaxAge < 0 && resp.MaxAge < 0 && len(h.PeekAll("Expires")) > 0)
	validated := len(h.PeekAll("ETag")) > 0 || len(h.PeekAll("Last-Modified")) > 0
	if (!explicit || resp.NoCache) && !validated {
		return RefuseNoFreshness
	}
	return ""
}

// VaryNames returns the lowercase field names the answer's Vary lists,
// nil when it has none.
func VaryNames(h Header) []string {
	var names []string
	for _, v := range h.PeekAll("Vary") {
		for len(v) > 0 {
			var name []byte
			name, v = nextItem(v)
			if len(name) > 0 {
				names = append(names, string(lower(string(name))))
			}
		}
	}
	return names
}

// AppendVaryKey appends to dst the secondary key of a request h under
// primary for the fields names: each name with the request's values of
// it, whitespace around them dropped.
func AppendVaryKey(dst []byte, primary string, names []string, h Header) []byte {
	dst = append(dst, primary...)
	for _, n := range names {
		dst = append(dst, 0)
		dst = append(dst, n...)
		dst = append(dst, '=')
		for i, v := range h.PeekAll(n) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, trim(v)...)
		}
	}
	return dst
}

func lower(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// Encoding of entries for shared stores.
const encodingVersion = 1

// ErrCorrupt is returned by Decode for bytes that are not an entry.
var ErrCorrupt = errors.New("cache: corrupt entry")

// Encode appends e's encoding to dst.
func Encode(dst []byte, e *Entry) []byte {
	dst = append(dst, encodingVersion)
	dst = binary.AppendUvarint(dst, uint64(e.Status))
	dst = binary.AppendVarint(dst, e.RequestTime.UnixNano())
	dst = binary.AppendVarint(dst, e.ResponseTime.UnixNano())
	dst = binary.AppendVarint(dst, int64(e.InitialAge))
	dst = binary.AppendVarint(dst, int64(e.Lifetime))
	dst = binary.AppendVarint(dst, int64(e.WhileRevalidate))
	dst = binary.AppendVarint(dst, int64(e.IfError))
	var flags byte
	if e.NoCache {
		flags |= 1
	}
	if e.MustRevalidate {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(e.Header)))
	for _, f := range e.Header {
		dst = appendString(dst, f.Name)
		dst = appendString(dst, f.Value)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Vary)))
	for _, v := range e.Vary {
		dst = appendString(dst, v)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Body)))
	return append(dst, e.Body...)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Decode reads an entry that Encode wrote.
func Decode(b []byte) (*Entry, error) {
	d := decoder{b: b}
	if d.byte() != encodingVersion {
		return nil, ErrCorrupt
	}
	e := &Entry{Status: int(d.uvarint())}
	e.RequestTime = time.Unix(0, d.varint())
	e.ResponseTime = time.Unix(0, d.varint())
	e.InitialAge = time.Duration(d.varint())
	e.Lifetime = time.Duration(d.varint())
	e.WhileRevalidate = time.Duration(d.varint())
	e.IfError = time.Duration(d.varint())
	flags := d.byte()
	e.NoCache, e.MustRevalidate = flags&1 != 0, flags&2 != 0
	n := d.count()
	if n > 0 {
		e.Header = make([]Field, n)
	}
	for i := range n {
		e.Header[i] = Field{d.string(), d.string()}
	}
	for range d.count() {
		e.Vary = append(e.Vary, d.string())
	}
	size := d.count()
	if d.err || size != len(d.b) {
		return nil, ErrCorrupt
	}
	e.Body = bytes.Clone(d.b)
	return e, nil
}

type decoder struct {
	b   []byte
	err bool
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = true
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that the rest of the input can hold.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.err = true
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
