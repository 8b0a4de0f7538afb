package auth

import (
	"encoding/base64"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hashOf(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basicHeader(user, pw string) []byte {
	return []byte("Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw)))
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBasicCheck(t *testing.T) {
	b, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(t, "wonderland")}})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name   string
		header []byte
		want   Result
		bcrypt bool // whether bcrypt runs
	}{
		{"good", basicHeader("alice", "wonderland"), OK, true},
		{"scheme in lower case", []byte("basic " + base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))), OK, true},
		{"wrong password", basicHeader("alice", "looking-glass"), Denied, true},
		{"unknown user", basicHeader("bob", "wonderland"), Denied, true},
		{"empty password", basicHeader("alice", ""), Denied, true},
		{"no header", nil, Denied, false},
		{"bearer", []byte("Bearer abc"), Denied, false},
		{"not base64", []byte("Basic !!!"), Denied, false},
		{"no colon", []byte("Basic " + base64.StdEncoding.EncodeToString([]byte("alice"))), Denied, false},
		{"too long", basicHeader("alice", string(make([]byte, 600))), Denied, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := b.BcryptRuns()
			_, got, _ := b.Check(tt.header, ip)
			if got != tt.want {
				t.Errorf("got %v; want %v", got, tt.want)
			}
			if ran := b.BcryptRuns() > before; ran != tt.bcrypt {
				t.Errorf("bcrypt ran: got %v; want %v", ran, tt.bcrypt)
			}
		})
	}
}

// TestBasicCache: good credentials cost bcrypt once per TTL; a wrong
// password is never remembered.
func TestBasicCache(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	b, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(t, "pw")}, CacheTTL: time.Minute, CacheSize: 8, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for i := range 5 {
		if user, r, _ := b.Check(basicHeader("alice", "pw"), ip); r != OK || user != "alice" {
			t.Fatalf("check %d: got %v %q; want ok alice", i, r, user)
		}
	}
	if got := b.BcryptRuns(); got != 1 {
		t.Errorf("bcrypt runs after 5 good checks: got %d; want 1", got)
	}
	for range 2 {
		b.Check(basicHeader("alice", "wrong"), ip)
	}
	if got := b.BcryptRuns(); got != 3 {
		t.Errorf("bcrypt runs after 2 wrong checks: got %d; want 3", got)
	}
	c.t = c.t.Add(time.Minute)
	b.Check(basicHeader("alice", "pw"), ip)
	if got := b.BcryptRuns(); got != 4 {
		t.Errorf("bcrypt runs after the TTL: got %d; want 4", got)
	}
}

// TestBasicFailureLimit: beyond the limit, a client is refused without
// bcrypt, even with the right password, until its window ends; other
// clients are not.
func TestBasicFailureLimit(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	b, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(t, "pw")}, CacheTTL: time.Minute, CacheSize: 8,
		FailureLimit: 3, FailureWindow: time.Minute, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	bad, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if _, r, _ := b.Check(basicHeader("alice", "guess"), bad); r != Denied {
			t.Fatalf("guess %d: got %v; want denied", i, r)
		}
	}
	for i := range 20 {
		_, r, retry := b.Check(basicHeader("alice", "guess"), bad)
		if r != Limited || retry <= 0 || retry > time.Minute {
			t.Fatalf("guess %d beyond the limit: got %v, retry %v; want limited within a minute", i, r, retry)
		}
	}
	if _, r, _ := b.Check(basicHeader("alice", "pw"), bad); r != Limited {
		t.Errorf("good password from the limited client: got %v; want limited", r)
	}
	if got := b.BcryptRuns(); got != 3 {
		t.Errorf("bcrypt runs: got %d; want 3 (none beyond the limit)", got)
	}
	if _, r, _ := b.Check(basicHeader("alice", "pw"), other); r != OK {
		t.Errorf("another client: got %v; want ok", r)
	}
	// Remembered credentials pass even from a limited client: they cost
	// no bcrypt.
	if _, r, _ := b.Check(basicHeader("alice", "pw"), bad); r != OK {
		t.Errorf("remembered credentials from the limited client: got %v; want ok", r)
	}
	c.t = c.t.Add(time.Minute)
	if _, r, _ := b.Check(basicHeader("alice", "guess2"), bad); r != Denied {
		t.Errorf("after the window: got %v; want denied (checked again)", r)
	}
}

func TestCredCacheBounded(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := newCredCache(time.Minute, 4)
	for i := range 10 {
		c.put([32]byte{byte(i)}, "u", now)
		if len(c.m) > 4 {
			t.Fatalf("after %d puts: %d entries; want at most 4", i+1, len(c.m))
		}
	}
	if _, ok := c.get([32]byte{9}, now); !ok {
		t.Error("the last entry put is missing")
	}
	if _, ok := c.get([32]byte{9}, now.Add(time.Minute)); ok {
		t.Error("an expired entry was found")
	}
}

// TestFailuresFull: with the table full of live windows, a new client is
// blocked (fail closed); once they expire, it is not.
func TestFailuresFull(t *testing.T) {
	now := time.Unix(1e9, 0)
	f := newFailures(1, time.Minute, 2)
	f.add(netip.MustParseAddr("192.0.2.1"), now)
	f.add(netip.MustParseAddr("192.0.2.2"), now)
	newcomer := netip.MustParseAddr("192.0.2.3")
	if blocked, _ := f.blocked(newcomer, now.Add(2*time.Second)); !blocked {
		t.Error("a new client with the table full: got not blocked; want blocked")
	}
	if blocked, _ := f.blocked(newcomer, now.Add(time.Minute+2*time.Second)); blocked {
		t.Error("a new client once the windows expired: got blocked; want not")
	}
}

// BenchmarkBasicCached is the cost of a request whose credentials are
// remembered: no bcrypt, no allocation.
func BenchmarkBasicCached(b *testing.B) {
	v, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(b, "pw")}, CacheTTL: time.Hour, CacheSize: 8})
	if err != nil {
		b.Fatal(err)
	}
	h, ip := basicHeader("alice", "pw"), netip.MustParseAddr("192.0.2.1")
	v.Check(h, ip)
	b.ReportAllocs()
	for b.Loop() {
		if _, r, _ := v.Check(h, ip); r != OK {
			b.Fatal(r)
		}
	}
}

func TestBasicCachedAllocs(t *testing.T) {
	v, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(t, "pw")}, CacheTTL: time.Hour, CacheSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	h, ip := basicHeader("alice", "pw"), netip.MustParseAddr("192.0.2.1")
	v.Check(h, ip)
	if n := testing.AllocsPerRun(100, func() { v.Check(h, ip) }); n != 0 {
		t.Errorf("allocations of a remembered check: got %v; want 0", n)
	}
}

// TestBasicBurstOneBcrypt: a burst of checks of the same credentials on a
// cold cache (a client's connections when its remembered credentials
// expire) costs one bcrypt comparison, not one each.
func TestBasicBurstOneBcrypt(t *testing.T) {
	b, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(t, "pw")}, CacheTTL: time.Minute, CacheSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	var wg sync.WaitGroup
	results := make(chan Result, 32)
	start := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, r, _ := b.Check(basicHeader("alice", "pw"), ip)
			results <- r
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	for r := range results {
		if r != OK {
			t.Errorf("got %v; want ok", r)
		}
	}
	if got := b.BcryptRuns(); got != 1 {
		t.Errorf("bcrypt runs for a burst of 32: got %d; want 1", got)
	}
}
