package tls

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testpebble"
)

// TestPebbleRedisOneOrder runs two instances sharing one Redis, each with
// its own client and issuer, as two processes would. Instance A gets the
// first handshake for a new host and orders; Pebble validates TLS-ALPN-01
// against instance B's listener, which finds A's challenge certificate in
// Redis; B's own handshake meanwhile waits for A's lock, then loads the
// certificate A cached. One order, one certificate, served by both.
func TestPebbleRedisOneOrder(t *testing.T) {
	redisAddr := startRedis(t)
	tlsLn := listen(t)
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: port(tlsLn)})
	const host = "shared.rampart.test"
	const prefix = "rampart-test:"
	mA, mB := redisACMEPair(t, p, redisAddr, host, prefix)
	serveTLS(t, mB, tlsLn)
	root, _ := p.Root(t)

	type result struct {
		serial string
		err    error
	}
	run := func(m *Manager) <-chan result {
		ch := make(chan result, 1)
		go func() {
			cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: host, RootCAs: testcert.Pool(root)})
			if err == nil {
				err = serr
			}
			ch <- result{servedSerial(cs), err}
		}()
		return ch
	}
	gotA := run(mA)
	rc := redisClient(t, redisAddr)
	for i := 0; rc.Exists(context.Background(), prefix+"acme:lock:"+host).Val() == 0; i++ {
		if i == 500 {
			t.Fatal("instance A never took the lock")
		}
		time.Sleep(2 * time.Millisecond)
	}
	gotB := run(mB)
	rA, rB := <-gotA, <-gotB
	if rA.err != nil || rB.err != nil {
		t.Fatalf("handshakes: A %v, B %v", rA.err, rB.err)
	}
	if n := p.Orders(); n != 1 {
		t.Errorf("got %d orders; want 1", n)
	}
	if rA.serial != rB.serial {
		t.Errorf("A serves serial %s, B %s; want one certificate", rA.serial, rB.serial)
	}
	if n := rc.Exists(context.Background(), prefix+"acme:lock:"+host).Val(); n != 0 {
		t.Errorf("lock still held after the order")
	}
	if n := rc.Exists(context.Background(), prefix+"acme:"+host, prefix+"acme:acme_account+key").Val(); n != 2 {
		t.Errorf("got %d of the certificate and account keys in Redis; want 2", n)
	}
	for name, m := range map[string]*Manager{"A": mA, "B": mB} {
		if c := m.Certificates(); len(c) != 1 || c[0].Host != host || c[0].Source != SourceACME {
			t.Errorf("%s: Certificates() = %+v", name, c)
		}
	}
}

// TestPebbleRedisOneRenewal: two instances sharing Redis hold the same
// certificate, so both renewal timers fire at about the same time; one
// instance renews it, the other waits for the lock and then finds the new
// certificate in the cache: its order is not finalized, and one certificate
// is issued, not two. Pebble issues 30-second certificates: autocert renews
// 10 s before the end, less up to 1 s of jitter, so the two timers fire
// within a second of each other.
func TestPebbleRedisOneRenewal(t *testing.T) {
	redisAddr := startRedis(t)
	tlsLn := listen(t)
	const lifetime = 30 * time.Second
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: port(tlsLn), Validity: lifetime})
	const host = "renewed.rampart.test"
	mA, mB := redisACMEPair(t, p, redisAddr, host, "rampart-renew:")
	serveTLS(t, mB, tlsLn)
	root, _ := p.Root(t)
	serial := func(m *Manager) string {
		t.Helper()
		cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: host, RootCAs: testcert.Pool(root), Time: func() time.Time {
			// Pebble dates a certificate from the second after it issued it
			return time.Now().Add(2 * time.Second)
		}})
		if err == nil {
			err = serr
		}
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return servedSerial(cs)
	}
	first := serial(mA) // A orders
	if got := serial(mB); got != first {
		t.Fatalf("B serves serial %s, A %s; want the one certificate from the cache", got, first)
	}
	if n := p.Orders(); n != 1 {
		t.Fatalf("got %d orders before the renewal; want 1", n)
	}
	issued := time.Now()
	// Both timers fire by about 21 s after issuance; wait for the renewal,
	// then long enough for the second instance to have renewed too, had it
	// not looked in the cache under the lock. The renewed certificate's
	// own renewal is due about 20 s after it, so the count is read before.
	deadline := issued.Add(lifetime)
	for p.Issued() < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if p.Issued() < 2 {
		t.Fatalf("no renewal within %v of issuance", lifetime)
	}
	time.Sleep(5 * time.Second)
	if n := p.Issued(); n != 2 {
		t.Errorf("%d certificates issued by %v after the first (%d orders); want 2: the first, one renewal",
			n, time.Since(issued).Round(time.Second), p.Orders())
	}
}

// redisACMEPair returns two Managers for host, as two instances would have,
// sharing their ACME state through the Redis at redisAddr under prefix and
// ordering from p by TLS-ALPN-01 only.
func redisACMEPair(t *testing.T, p *testpebble.Pebble, redisAddr, host, prefix string) (*Manager, *Manager) {
	t.Helper()
	a := &config.ACME{
		Email:        "ops@rampart.test",
		DirectoryURL: p.DirURL,
		CAFile:       p.CAFile,
		Cache:        config.StoreRedis,
		Hosts:        []string{host},
	}
	instance := func() *Manager {
		m, err := New(&config.ListenerTLS{ACME: a}, Options{NoHTTP01: true, Redis: redisClient(t, redisAddr), RedisKeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	return instance(), instance()
}
