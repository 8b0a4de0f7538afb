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
	mA, mB := instance(), instance()
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
