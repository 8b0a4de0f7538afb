package cache

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hdr is a Header from "Name: value" pairs.
func hdr(fields ...string) Fields {
	var fs Fields
	for i := 0; i+1 < len(fields); i += 2 {
		fs = append(fs, Field{fields[i], fields[i+1]})
	}
	return fs
}

func TestParseControl(t *testing.T) {
	base := Directives{MaxAge: -1, SMaxAge: -1, StaleWhileRevalidate: -1, StaleIfError: -1, MaxStale: -1, MinFresh: -1}
	with := func(f func(d *Directives)) Directives { d := base; f(&d); return d }
	tests := []struct {
		name string
		h    Fields
		want Directives
	}{
		{"none", nil, base},
		{"max-age", hdr("Cache-Control", "max-age=60"), with(func(d *Directives) { d.MaxAge = 60 })},
		{"case and spaces", hdr("cache-control", " Public ,  S-MAXAGE=5 "), with(func(d *Directives) { d.Public, d.SMaxAge = true, 5 })},
		{"quoted", hdr("Cache-Control", `max-age="30"`), with(func(d *Directives) { d.MaxAge = 30 })},
		{"invalid is zero", hdr("Cache-Control", "max-age=abc"), with(func(d *Directives) { d.MaxAge = 0 })},
		{"first wins", hdr("Cache-Control", "max-age=10, max-age=20"), with(func(d *Directives) { d.MaxAge = 10 })},
		{"two fields", hdr("Cache-Control", "no-cache", "Cache-Control", "no-store"), with(func(d *Directives) { d.NoCache, d.NoStore = true, true })},
		{"qualified no-cache", hdr("Cache-Control", `no-cache="Set-Cookie, X", private="Y"`), with(func(d *Directives) { d.NoCache, d.Private = true, true })},
		{"stale windows", hdr("Cache-Control", "stale-while-revalidate=30, stale-if-error=600"), with(func(d *Directives) { d.StaleWhileRevalidate, d.StaleIfError = 30, 600 })},
		{"revalidate", hdr("Cache-Control", "must-revalidate, proxy-revalidate"), with(func(d *Directives) { d.MustRevalidate, d.ProxyRevalidate = true, true })},
		{"request", hdr("Cache-Control", "max-stale, min-fresh=5, only-if-cached"), with(func(d *Directives) { d.MaxStaleAny, d.MinFresh, d.OnlyIfCached = true, 5, true })},
		{"max-stale value", hdr("Cache-Control", "max-stale=7"), with(func(d *Directives) { d.MaxStale = 7 })},
		{"huge", hdr("Cache-Control", "max-age=99999999999999999999"), with(func(d *Directives) { d.MaxAge = maxSeconds })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseControl(tt.h); got != tt.want {
				t.Errorf("got %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestFreshness(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	date := t0.Format(httpTime)
	lim := Limits{MaxStale: time.Hour}
	tests := []struct {
		name                string
		h                   Fields
		wantLifetime        time.Duration
		wantAge             time.Duration // the corrected initial age (request sent at t0, answered at t0+1s)
		wantSWR, wantSIE    time.Duration
		wantMustRevalidate  bool
		wantFreshAtResponse bool
	}{
		{"max-age", hdr("Cache-Control", "max-age=60", "Date", date), time.Minute, time.Second, 0, 0, false, true},
		{"s-maxage wins", hdr("Cache-Control", "max-age=60, s-maxage=5", "Date", date), 5 * time.Second, time.Second, 0, 0, false, true},
		{"expires", hdr("Expires", t0.Add(time.Hour).Format(httpTime), "Date", date), time.Hour, time.Second, 0, 0, false, true},
		{"invalid expires", hdr("Expires", "0", "Date", date), 0, time.Second, 0, 0, false, false},
		{"max-age over expires", hdr("Cache-Control", "max-age=10", "Expires", t0.Add(time.Hour).Format(httpTime)), 10 * time.Second, time.Second, 0, 0, false, true},
		{"age field", hdr("Cache-Control", "max-age=60", "Age", "30", "Date", date), time.Minute, 31 * time.Second, 0, 0, false, true},
		{"stale windows capped", hdr("Cache-Control", "max-age=1, stale-while-revalidate=30, stale-if-error=86400"), time.Second, time.Second, 30 * time.Second, time.Hour, false, false},
		{"must-revalidate drops windows", hdr("Cache-Control", "max-age=1, stale-if-error=60, must-revalidate"), time.Second, time.Second, 0, 0, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{RequestTime: t0, ResponseTime: t0.Add(time.Second)}
			e.Freshness(tt.h, ParseControl(tt.h), lim)
			if e.Lifetime != tt.wantLifetime {
				t.Errorf("lifetime: got %v; want %v", e.Lifetime, tt.wantLifetime)
			}
			if got := e.Age(t0.Add(2 * time.Second)); got != tt.wantAge+time.Second {
				t.Errorf("age a second after the answer: got %v; want %v", got, tt.wantAge+time.Second)
			}
			if e.WhileRevalidate != tt.wantSWR || e.IfError != tt.wantSIE || e.MustRevalidate != tt.wantMustRevalidate {
				t.Errorf("swr %v sie %v must-revalidate %v; want %v %v %v", e.WhileRevalidate, e.IfError,
					e.MustRevalidate, tt.wantSWR, tt.wantSIE, tt.wantMustRevalidate)
			}
			if got := e.Fresh(t0.Add(time.Second)); got != tt.wantFreshAtResponse {
				t.Errorf("fresh when it arrived: got %v; want %v", got, tt.wantFreshAtResponse)
			}
		})
	}
}

const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

func TestStorable(t *testing.T) {
	none := ParseControl(Fields(nil))
	tests := []struct {
		name       string
		req        Fields
		h          Fields
		status     int
		authorized bool
		want       Refusal
	}{
		{"max-age", nil, hdr("Cache-Control", "max-age=60"), 200, false, ""},
		{"404 with max-age", nil, hdr("Cache-Control", "max-age=60"), 404, false, ""},
		{"validator only", nil, hdr("ETag", `"x"`), 200, false, ""},
		{"no-cache with validator", nil, hdr("Cache-Control", "no-cache", "Last-Modified", "Mon, 01 Jan 2026 00:00:00 GMT"), 200, false, ""},
		{"no-cache without validator", nil, hdr("Cache-Control", "no-cache, max-age=60"), 200, false, RefuseNoFreshness},
		{"nothing", nil, nil, 200, false, RefuseNoFreshness},
		{"max-age=0 without validator", nil, hdr("Cache-Control", "max-age=0"), 200, false, RefuseNoFreshness},
		{"no-store", nil, hdr("Cache-Control", "no-store, max-age=60"), 200, false, RefuseNoStore},
		{"private", nil, hdr("Cache-Control", "private, max-age=60"), 200, false, RefusePrivate},
		{"request no-store", hdr("Cache-Control", "no-store"), hdr("Cache-Control", "max-age=60"), 200, false, RefuseRequestNoStore},
		{"206", nil, hdr("Cache-Control", "max-age=60"), 206, false, RefuseStatus},
		{"500", nil, hdr("Cache-Control", "max-age=60"), 500, false, RefuseStatus},
		{"authorization", nil, hdr("Cache-Control", "max-age=60"), 200, true, RefuseAuthorization},
		{"authorization public", nil, hdr("Cache-Control", "public, max-age=60"), 200, true, ""},
		{"authorization s-maxage", nil, hdr("Cache-Control", "s-maxage=60"), 200, true, ""},
		{"authorization must-revalidate", nil, hdr("Cache-Control", "max-age=60, must-revalidate"), 200, true, ""},
		{"vary star", nil, hdr("Cache-Control", "max-age=60", "Vary", "Accept, *"), 200, false, RefuseVaryStar},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := none
			if tt.req != nil {
				req = ParseControl(tt.req)
			}
			if got := Storable(req, ParseControl(tt.h), tt.status, tt.h, tt.authorized); got != tt.want {
				t.Errorf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestVaryKey(t *testing.T) {
	names := VaryNames(hdr("Vary", "Accept-Encoding, accept-language", "Vary", "X-A"))
	if want := []string{"accept-encoding", "accept-language", "x-a"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("VaryNames: got %q; want %q", names, want)
	}
	a := AppendVaryKey(nil, "GET http://h/", names, hdr("Accept-Encoding", "gzip", "Accept-Language", " en "))
	b := AppendVaryKey(nil, "GET http://h/", names, hdr("accept-encoding", "gzip", "accept-language", "en"))
	c := AppendVaryKey(nil, "GET http://h/", names, hdr("Accept-Encoding", "br", "Accept-Language", "en"))
	if !bytes.Equal(a, b) {
		t.Errorf("same values, other spelling: got %q and %q; want equal keys", a, b)
	}
	if bytes.Equal(a, c) {
		t.Errorf("other values: got equal keys %q", a)
	}
	if !bytes.HasPrefix(a, []byte("GET http://h/\x00")) {
		t.Errorf("got %q; want the primary key and a NUL first", a)
	}
}

func TestEncodeDecode(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 123)
	tests := []*Entry{
		{Status: 200, Header: []Field{{"Content-Type", "text/plain"}, {"ETag", `"x"`}}, Body: []byte("body"),
			RequestTime: t0, ResponseTime: t0.Add(time.Millisecond), InitialAge: time.Second, Lifetime: time.Minute,
			NoCache: true, MustRevalidate: true, WhileRevalidate: 3 * time.Second, IfError: 4 * time.Second},
		{Vary: []string{"accept-encoding"}, ResponseTime: t0, RequestTime: t0},
	}
	for i, e := range tests {
		got, err := Decode(Encode(nil, e))
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !reflect.DeepEqual(got.Header, e.Header) || !bytes.Equal(got.Body, e.Body) || got.Status != e.Status ||
			!got.RequestTime.Equal(e.RequestTime) || !got.ResponseTime.Equal(e.ResponseTime) || got.Lifetime != e.Lifetime ||
			got.InitialAge != e.InitialAge || got.NoCache != e.NoCache || got.MustRevalidate != e.MustRevalidate ||
			got.WhileRevalidate != e.WhileRevalidate || got.IfError != e.IfError || !reflect.DeepEqual(got.Vary, e.Vary) {
			t.Errorf("entry %d: got %+v; want %+v", i, got, e)
		}
	}
	enc := Encode(nil, tests[0])
	for _, bad := range [][]byte{nil, {9}, enc[:len(enc)-1], append(append([]byte(nil), enc...), 'x')} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q): got no error; want ErrCorrupt", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, &Entry{Status: 200, Header: []Field{{"A", "b"}}, Body: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err == nil && e == nil {
			t.Fatal("nil entry without an error")
		}
	})
}

func TestNotModified(t *testing.T) {
	e := &Entry{Status: 200, Header: []Field{{"ETag", `W/"v1"`}, {"Last-Modified", "Mon, 05 Jan 2026 00:00:00 GMT"}}}
	tests := []struct {
		name     string
		inm, ims string
		want     bool
	}{
		{"etag", `"v1"`, "", true},
		{"etag in list", `"v0", W/"v1"`, "", true},
		{"star", `*`, "", true},
		{"other etag", `"v2"`, "", false},
		{"other etag wins over ims", `"v2"`, "Mon, 05 Jan 2026 00:00:00 GMT", false},
		{"ims same", "", "Mon, 05 Jan 2026 00:00:00 GMT", true},
		{"ims later", "", "Tue, 06 Jan 2026 00:00:00 GMT", true},
		{"ims earlier", "", "Sun, 04 Jan 2026 00:00:00 GMT", false},
		{"ims invalid", "", "yesterday", false},
		{"none", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.NotModified([]byte(tt.inm), []byte(tt.ims)); got != tt.want {
				t.Errorf("got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	e := &Entry{Status: 200, Header: []Field{{"Cache-Control", "no-cache"}, {"ETag", `"v1"`}, {"X-Old", "kept"}},
		Body: []byte("body"), RequestTime: t0, ResponseTime: t0, NoCache: true}
	n := e.Refresh(hdr("Cache-Control", "max-age=60", "ETag", `"v1"`), t0.Add(time.Hour), t0.Add(time.Hour), Limits{MaxStale: time.Hour})
	if n == e || !e.NoCache {
		t.Fatal("Refresh changed the stored entry; want a new one")
	}
	if n.NoCache || n.Lifetime != time.Minute || !n.Fresh(t0.Add(time.Hour+time.Second)) {
		t.Errorf("refreshed: no-cache %v lifetime %v; want fresh for a minute", n.NoCache, n.Lifetime)
	}
	if n.Get("x-old") != "kept" || n.Get("cache-control") != "max-age=60" || len(Fields(n.Header).PeekAll("ETag")) != 1 {
		t.Errorf("refreshed header: got %v; want X-Old kept, Cache-Control replaced, one ETag", n.Header)
	}
	if !bytes.Equal(n.Body, e.Body) {
		t.Errorf("refreshed body: got %q; want the stored %q", n.Body, e.Body)
	}
}

func TestAppendStatus(t *testing.T) {
	tests := []struct {
		s    Status
		want string
	}{
		{Status{Hit: true, TTL: 42 * time.Second, HasTTL: true}, "R; hit; ttl=42"},
		{Status{Fwd: "uri-miss", FwdStatus: 200, Stored: true}, "R; fwd=uri-miss; fwd-status=200; stored"},
		{Status{Hit: true, Collapsed: true, Detail: "x"}, "R; hit; collapsed; detail=x"},
		{Status{Fwd: "stale", FwdStatus: 503, TTL: -3 * time.Second, HasTTL: true}, "R; fwd=stale; fwd-status=503; ttl=-3"},
	}
	for _, tt := range tests {
		if got := string(AppendStatus(nil, "R", tt.s)); got != tt.want {
			t.Errorf("got %q; want %q", got, tt.want)
		}
	}
}

// TestMemoryEvicts: the store stays within its byte bound, evicting and
// saying so.
func TestMemoryEvicts(t *testing.T) {
	var evicted atomic.Int64
	m := NewMemory(MemoryOptions{MaxBytes: 64 << 10, OnEvict: func() { evicted.Add(1) }})
	defer m.Close()
	ctx := context.Background()
	body := make([]byte, 4<<10)
	for i := range 100 {
		if err := m.Set(ctx, fmt.Sprint("k", i), &Entry{Status: 200, Body: body}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if !waitUntil(func() bool { return m.Bytes() <= 64<<10 && evicted.Load() > 0 }) {
		t.Errorf("after 400 KiB into 64 KiB: %d bytes held, %d evictions; want at most 64 KiB and some", m.Bytes(), evicted.Load())
	}
	if e, _ := m.Get(ctx, "k99"); e == nil {
		// W-TinyLFU may refuse a new entry for an older one; some recent
		// entry must be there all the same.
		found := 0
		for i := range 100 {
			if e, _ := m.Get(ctx, fmt.Sprint("k", i)); e != nil {
				found++
			}
		}
		if found == 0 {
			t.Error("nothing left in the store")
		}
	}
}

func TestMemoryPurgeAndExpiry(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxBytes: 1 << 20})
	defer m.Close()
	ctx := context.Background()
	for _, k := range []string{"GET http://a/1", "GET http://a/2", "GET http://b/1"} {
		_ = m.Set(ctx, k, &Entry{Status: 200}, time.Hour)
	}
	if n, _ := m.Purge(ctx, "GET http://a/", true); n != 2 {
		t.Errorf("prefix purge: got %d; want 2", n)
	}
	if n, _ := m.Purge(ctx, "GET http://b/1", false); n != 1 {
		t.Errorf("key purge: got %d; want 1", n)
	}
	if e, _ := m.Get(ctx, "GET http://b/1"); e != nil {
		t.Error("purged entry still there")
	}
	_ = m.Set(ctx, "short", &Entry{Status: 200}, 50*time.Millisecond)
	if !waitUntil(func() bool { e, _ := m.Get(ctx, "short"); return e == nil }) {
		t.Error("the entry outlived its TTL")
	}
}

func TestFlights(t *testing.T) {
	fs := NewFlights()
	f, leader := fs.Join([]byte("k"))
	if !leader {
		t.Fatal("first Join: not the leader")
	}
	var waited sync.WaitGroup
	var ok atomic.Int64
	for range 10 {
		g, lead := fs.Join([]byte("k"))
		if lead || g != f {
			t.Fatal("a second Join led a flight of its own")
		}
		waited.Add(1)
		go func() {
			defer waited.Done()
			if g.Wait(5 * time.Second) {
				ok.Add(1)
			}
		}()
	}
	f.Done()
	f.Done() // twice is harmless
	waited.Wait()
	if ok.Load() != 10 || fs.Len() != 0 {
		t.Errorf("waiters released: %d, flights left %d; want 10 and 0", ok.Load(), fs.Len())
	}
	g, _ := fs.Join([]byte("slow"))
	if g.Wait(10 * time.Millisecond) {
		t.Error("Wait on an unfinished flight reported it done")
	}
	g.Done()
}

func waitUntil(cond func() bool) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cond()
}

// FuzzParseControl: any Cache-Control a client or an upstream sends parses
// without a panic, to durations within bounds.
func FuzzParseControl(f *testing.F) {
	for _, s := range []string{"max-age=60", `no-cache="a, b", private`, "s-maxage=99999999999999999999", "max-stale", `"`, ",,=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseControl(hdr("Cache-Control", s))
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.StaleWhileRevalidate, d.StaleIfError, d.MaxStale, d.MinFresh} {
			if v < -1 || v > maxSeconds {
				t.Fatalf("%q: a duration of %d", s, v)
			}
		}
	})
}
