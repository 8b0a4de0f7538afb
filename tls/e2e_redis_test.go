package tls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testlog"
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
		Email:         "ops@rampart.test",
		DirectoryURL:  p.DirURL,
		CAFile:        p.CAFile,
		Cache:         config.StoreRedis,
		Hosts:         []string{host},
		EncryptionKey: testKey,
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

// setRecorder is a go-redis hook that keeps the value of every SET.
type setRecorder struct {
	mu     sync.Mutex
	values map[string][][]byte // Redis key -> values set, in order
}

func (r *setRecorder) record(cmd redis.Cmder) {
	args := cmd.Args()
	if len(args) < 3 || !strings.EqualFold(fmt.Sprint(args[0]), "set") {
		return
	}
	var v []byte
	switch a := args[2].(type) {
	case []byte:
		v = bytes.Clone(a)
	case string:
		v = []byte(a)
	default:
		v = fmt.Append(nil, a)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.values == nil {
		r.values = make(map[string][][]byte)
	}
	key := fmt.Sprint(args[1])
	r.values[key] = append(r.values[key], v)
}

func (r *setRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *setRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.record(cmd)
		return next(ctx, cmd)
	}
}

func (r *setRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			r.record(c)
		}
		return next(ctx, cmds)
	}
}

// TestPebbleRedisSealedAtRest orders a certificate through Redis and
// checks every value written on the way (the account key, the TLS-ALPN-01
// token certificate, the certificate and its key) and every value left:
// none shows a private key or parses as PEM. A new instance loads the
// sealed certificate without a new order; a certificate planted in clear
// is not served: a new order replaces it.
func TestPebbleRedisSealedAtRest(t *testing.T) {
	redisAddr := startRedis(t)
	tlsLn := listen(t)
	p := testpebble.Start(t, testpebble.Options{HTTPPort: freePort(t), TLSPort: port(tlsLn)})
	const host, planted = "sealed.rampart.test", "planted.rampart.test"
	const prefix = "rampart-sealed:"
	root, _ := p.Root(t)
	rec := &setRecorder{}
	client := redisClient(t, redisAddr)
	client.AddHook(rec)
	a := &config.ACME{
		Email: "ops@rampart.test", DirectoryURL: p.DirURL, CAFile: p.CAFile,
		Cache: config.StoreRedis, Hosts: []string{host, planted}, EncryptionKey: testKey,
	}
	var logs testlog.Buffer
	m, err := New(&config.ListenerTLS{ACME: a}, Options{NoHTTP01: true, Redis: client, RedisKeyPrefix: prefix, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	serveTLS(t, m, tlsLn)
	serial := func(m *Manager, name string) string {
		t.Helper()
		cs, _, err, serr := handshake(t, m, &tls.Config{ServerName: name, RootCAs: testcert.Pool(root)})
		if err == nil {
			err = serr
		}
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		return servedSerial(cs)
	}
	first := serial(m, host)

	rec.mu.Lock()
	for _, k := range []string{host, "acme_account+key", host + "+token"} {
		if len(rec.values[prefix+"acme:"+k]) == 0 {
			t.Errorf("no SET of %s recorded; got keys %v", prefix+"acme:"+k, slices.Sorted(maps.Keys(rec.values)))
		}
	}
	for k, vs := range rec.values {
		for _, v := range vs {
			if bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("-----BEGIN")) {
				t.Errorf("SET %s wrote a PEM block in clear: %.60q", k, v)
			}
			if b, _ := pem.Decode(v); b != nil {
				t.Errorf("SET %s wrote a value that parses as PEM (%s)", k, b.Type)
			}
		}
	}
	rec.mu.Unlock()
	rc := redisClient(t, redisAddr)
	keys := rc.Keys(context.Background(), "*").Val()
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"acme:lock:") {
			checkSealed(t, rc, k)
		}
	}
	if len(keys) < 2 {
		t.Errorf("got Redis keys %v; want the certificate and the account key", keys)
	}

	t.Run("a new instance loads the sealed certificate", func(t *testing.T) {
		m2, err := New(&config.ListenerTLS{ACME: a}, Options{NoHTTP01: true, Redis: redisClient(t, redisAddr), RedisKeyPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		defer m2.Close()
		if got := serial(m2, host); got != first {
			t.Errorf("got serial %s; want %s from the cache", got, first)
		}
		if n := p.Orders(); n != 1 {
			t.Errorf("got %d orders; want 1", n)
		}
	})
	t.Run("a certificate planted in clear is not served", func(t *testing.T) {
		leaf := testcert.NewCA(t, "Attacker CA").Issue(t, planted, time.Time{}, false, planted)
		if err := rc.Set(context.Background(), prefix+"acme:"+planted, append(bytes.Clone(leaf.KeyPEM), leaf.CertPEM...), 0).Err(); err != nil {
			t.Fatal(err)
		}
		// The handshake verifies against Pebble's root only: the planted
		// certificate would fail it.
		if got := serial(m, planted); got == leaf.Cert.SerialNumber.String() {
			t.Fatal("the planted certificate was served")
		}
		checkSealed(t, rc, prefix+"acme:"+planted)
		if !strings.Contains(logs.String(), "in clear ignored") {
			t.Errorf("the planted value was not logged: %s", logs.String())
		}
	})
}
