package tls

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/acme/autocert"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/internal/testlog"
)

// testCache is a redisCache under prefix "test:acme:" sealing under
// testKeyring(previous...), logging to logs.
func testCache(t testing.TB, c redis.UniversalClient, acceptClear bool, logs *testlog.Buffer, previous ...string) *redisCache {
	return &redisCache{client: c, prefix: "test:acme:", keys: testKeyring(t, previous...), acceptClear: acceptClear, log: logs.Logger()}
}

func TestRedisCache(t *testing.T) {
	addr := startRedis(t)
	c := redisClient(t, addr)
	cache := testCache(t, c, false, &testlog.Buffer{})
	ctx := context.Background()
	if _, err := cache.Get(ctx, "a.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get of a missing key: got %v; want autocert.ErrCacheMiss", err)
	}
	for key, wantTTL := range map[string]bool{"a.test": false, "acme_account+key": false, "tok+http-01": true, "a.test+token": true} {
		if err := cache.Put(ctx, key, []byte("v "+key)); err != nil {
			t.Fatal(err)
		}
		got, err := cache.Get(ctx, key)
		if err != nil || string(got) != "v "+key {
			t.Fatalf("Get(%q): got %q, %v", key, got, err)
		}
		ttl := c.TTL(ctx, "test:acme:"+key).Val()
		if (ttl > 0) != wantTTL || ttl > tokenTTL {
			t.Errorf("%s: got TTL %v; want one: %v", key, ttl, wantTTL)
		}
		if raw := c.Get(ctx, "test:acme:"+key).Val(); strings.Contains(raw, "v "+key) {
			t.Errorf("%s: Redis holds %q; want it sealed", key, raw)
		}
	}
	if err := cache.Delete(ctx, "a.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, "a.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get after Delete: got %v; want a miss", err)
	}
	if err := cache.Delete(ctx, "never.test"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func TestRedisLock(t *testing.T) {
	addr := startRedis(t)
	c := redisClient(t, addr)
	l := &redisLock{client: c, prefix: "test:acme:lock:", ttl: 300 * time.Millisecond, poll: 10 * time.Millisecond}
	ctx := context.Background()

	releaseA, err := l.acquire(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("held: another waits until its context ends", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := l.acquire(wctx, "a.test"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the wait to time out", err)
		}
	})
	t.Run("another host is free", func(t *testing.T) {
		release, err := l.acquire(ctx, "b.test")
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
	t.Run("the holder renews its lease", func(t *testing.T) {
		time.Sleep(3 * l.ttl)
		if n := c.Exists(ctx, "test:acme:lock:a.test").Val(); n != 1 {
			t.Fatal("lease lapsed while held")
		}
	})
	t.Run("a waiter gets it on release", func(t *testing.T) {
		got := make(chan error, 1)
		go func() {
			release, err := l.acquire(ctx, "a.test")
			if err == nil {
				release()
			}
			got <- err
		}()
		time.Sleep(50 * time.Millisecond)
		releaseA()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiter still waiting after release")
		}
	})
	t.Run("release deletes only its own lock", func(t *testing.T) {
		release, err := l.acquire(ctx, "c.test")
		if err != nil {
			t.Fatal(err)
		}
		// As if its lease lapsed and another instance took the lock.
		c.Set(ctx, "test:acme:lock:c.test", "someone else", time.Minute)
		release()
		if v := c.Get(ctx, "test:acme:lock:c.test").Val(); v != "someone else" {
			t.Fatalf("got lock value %q; want the other instance's lock intact", v)
		}
	})
	t.Run("Redis down", func(t *testing.T) {
		down := &redisLock{client: redisDown(t), prefix: "x:", ttl: time.Second, poll: 10 * time.Millisecond}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := down.acquire(wctx, "a.test"); err == nil || !strings.Contains(err.Error(), "ACME lock") {
			t.Fatalf("got %v; want the Redis error", err)
		}
	})
}

// TestRedisLockOneAtATime runs many contenders: at most one holds the lock
// at any moment.
func TestRedisLockOneAtATime(t *testing.T) {
	addr := startRedis(t)
	var mu sync.Mutex
	holders, maxHolders := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		l := &redisLock{client: redisClient(t, addr), prefix: "test:lock:", ttl: time.Second, poll: 5 * time.Millisecond}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.acquire(context.Background(), "h.test")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			holders++
			maxHolders = max(maxHolders, holders)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			holders--
			mu.Unlock()
			release()
		}()
	}
	wg.Wait()
	if maxHolders != 1 {
		t.Fatalf("got %d holders at once; want 1", maxHolders)
	}
}

// checkSealed fails t if the Redis value at name shows a PEM block or a
// private key, or is not an envelope that testKeyring opens under name.
func checkSealed(t testing.TB, c redis.UniversalClient, name string) {
	t.Helper()
	raw, err := c.Get(context.Background(), name).Bytes()
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if bytes.Contains(raw, []byte("PRIVATE KEY")) || bytes.Contains(raw, []byte("-----BEGIN")) {
		t.Errorf("%s holds a PEM block in clear: %.60q", name, raw)
	}
	if b, _ := pem.Decode(raw); b != nil {
		t.Errorf("%s parses as PEM (%s)", name, b.Type)
	}
	if _, _, err := testKeyring(t).open(name, raw); err != nil {
		t.Errorf("%s: %v; want a value sealed under the current key", name, err)
	}
}

// TestRedisCacheSealsAtRest: whatever autocert stores (a certificate with
// its key, the account key, a TLS-ALPN-01 token certificate, an HTTP-01 key
// authorization) sits in Redis sealed; Get returns it as put.
func TestRedisCacheSealsAtRest(t *testing.T) {
	c := redisClient(t, startRedis(t))
	cache := testCache(t, c, false, &testlog.Buffer{})
	leaf := testcert.NewCA(t, "Seal CA").Issue(t, "a.example.com", time.Time{}, false, "a.example.com")
	certPEM := append(bytes.Clone(leaf.KeyPEM), leaf.CertPEM...)
	ctx := context.Background()
	for _, tt := range []struct{ key, value string }{
		{"a.example.com", string(certPEM)},
		{"a.example.com+rsa", string(certPEM)},
		{"acme_account+key", string(leaf.KeyPEM)},
		{"a.example.com+token", string(certPEM)},
		{"Zm9vYmFyYmF6cXV4MTIzNA+http-01", "Zm9vYmFyYmF6cXV4MTIzNA.thumbprint"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			if err := cache.Put(ctx, tt.key, []byte(tt.value)); err != nil {
				t.Fatal(err)
			}
			checkSealed(t, c, "test:acme:"+tt.key)
			if got, err := cache.Get(ctx, tt.key); err != nil || string(got) != tt.value {
				t.Errorf("Get: got %.40q, %v; want the value put", got, err)
			}
		})
	}
}

// TestRedisCacheCleartext: a value in clear (a Rampart without encryption
// wrote it, or someone who can write to Redis planted it) is a cache miss,
// logged, unless insecure_migrate_cleartext accepts it: then it is
// returned and sealed in place, a token keeping its expiry.
func TestRedisCacheCleartext(t *testing.T) {
	c := redisClient(t, startRedis(t))
	ctx := context.Background()
	leaf := testcert.NewCA(t, "Legacy CA").Issue(t, "legacy.example.com", time.Time{}, false, "legacy.example.com")
	clear := append(bytes.Clone(leaf.KeyPEM), leaf.CertPEM...)
	for _, tt := range []struct {
		name        string
		acceptClear bool
		key         string
		ttl         time.Duration
	}{
		{"ignored: certificate", false, "legacy.example.com", 0},
		{"ignored: account key", false, "acme_account+key", 0},
		{"ignored: HTTP-01 token", false, "Zm9vYmFyYmF6cXV4MTIzNA+http-01", time.Minute},
		{"migrated: certificate", true, "legacy.example.com", 0},
		{"migrated: account key", true, "acme_account+key", 0},
		{"migrated: TLS-ALPN-01 token", true, "legacy.example.com+token", time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs testlog.Buffer
			cache := testCache(t, c, tt.acceptClear, &logs)
			name := "test:acme:" + tt.key
			if err := c.Set(ctx, name, clear, tt.ttl).Err(); err != nil {
				t.Fatal(err)
			}
			got, err := cache.Get(ctx, tt.key)
			if !tt.acceptClear {
				if !errors.Is(err, autocert.ErrCacheMiss) {
					t.Fatalf("got %.40q, %v; want a cache miss", got, err)
				}
				cache.Get(ctx, tt.key) // an HTTP-01 lookup may ask again and again
				if n := strings.Count(logs.String(), "in clear ignored"); n != 1 {
					t.Errorf("logged %d times; want once:\n%s", n, logs.String())
				}
				return
			}
			if err != nil || !bytes.Equal(got, clear) {
				t.Fatalf("got %.40q, %v; want the value in clear", got, err)
			}
			checkSealed(t, c, name)
			if ttl := c.TTL(ctx, name).Val(); (ttl > 0) != (tt.ttl > 0) || ttl > tt.ttl {
				t.Errorf("got TTL %v after sealing; want the value's own, %v", ttl, tt.ttl)
			}
			if got, err := cache.Get(ctx, tt.key); err != nil || !bytes.Equal(got, clear) {
				t.Errorf("second Get: got %.40q, %v; want the value", got, err)
			}
			if n := strings.Count(logs.String(), "accepted and sealed"); n != 1 {
				t.Errorf("logged the migration %d times; want once:\n%s", n, logs.String())
			}
		})
	}
}

// TestRedisCacheNotServed: a sealed value that was modified, copied from
// another key or truncated is a cache miss (autocert orders anew and
// overwrites it), logged as an error; one sealed under a key this instance
// does not have is an error, so that autocert does not overwrite what the
// rest of the fleet can read.
func TestRedisCacheNotServed(t *testing.T) {
	c := redisClient(t, startRedis(t))
	ctx := context.Background()
	var logs testlog.Buffer
	cache := testCache(t, c, true, &logs) // values in clear accepted: a sealed one is still checked
	other := &redisCache{client: c, prefix: "test:acme:", keys: mustKeyring(t, testKeyBytes(3)), log: logs.Logger()}
	const host = "victim.example.com"
	if err := cache.Put(ctx, host, []byte("the victim's certificate")); err != nil {
		t.Fatal(err)
	}
	if err := cache.Put(ctx, "attacker.example.com", []byte("the attacker's certificate")); err != nil {
		t.Fatal(err)
	}
	if err := other.Put(ctx, "foreign.example.com", []byte("sealed under another key")); err != nil {
		t.Fatal(err)
	}
	sealed := c.Get(ctx, "test:acme:"+host).Val()
	tests := []struct {
		name    string
		value   string // "" leaves the value as it is
		key     string
		wantErr error
	}{
		{"another host's value copied over", c.Get(ctx, "test:acme:attacker.example.com").Val(), host, autocert.ErrCacheMiss},
		{"a byte changed", sealed[:len(sealed)-5] + "x" + sealed[len(sealed)-4:], host, autocert.ErrCacheMiss},
		{"truncated", sealed[:sealHeader+2], host, autocert.ErrCacheMiss},
		{"the certificate copied to the account key", sealed, "acme_account+key", autocert.ErrCacheMiss},
		{"sealed under an unknown key", "", "foreign.example.com", errUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.value != "" {
				if err := c.Set(ctx, "test:acme:"+tt.key, tt.value, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			before := logs.String()
			got, err := cache.Get(ctx, tt.key)
			if !errors.Is(err, tt.wantErr) || got != nil {
				t.Fatalf("got %q, %v; want nothing and %v", got, err, tt.wantErr)
			}
			if logged := strings.TrimPrefix(logs.String(), before); !strings.Contains(logged, "level=ERROR") {
				t.Errorf("logged %q; want an error", logged)
			}
			if tt.value != "" && c.Get(ctx, "test:acme:"+tt.key).Val() != tt.value {
				t.Errorf("the value was changed by a Get")
			}
		})
	}
}

func mustKeyring(t testing.TB, current []byte, previous ...[]byte) *keyring {
	t.Helper()
	k, err := newKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRedisCacheMigrate: the migration at start seals every value of the
// cache under the current key (in clear with insecure_migrate_cleartext,
// or under a previous key), those no handshake asks for included, and
// leaves the order lock, other prefixes and values it cannot open alone.
func TestRedisCacheMigrate(t *testing.T) {
	c := redisClient(t, startRedis(t))
	ctx := context.Background()
	old := &redisCache{client: c, prefix: "test:acme:", keys: mustKeyring(t, testKeyBytes(2))}
	foreign := &redisCache{client: c, prefix: "test:acme:", keys: mustKeyring(t, testKeyBytes(3))}
	set := func(name, value string, ttl time.Duration) {
		if err := c.Set(ctx, name, value, ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
	set("test:acme:clear.example.com", "-----BEGIN EC PRIVATE KEY-----\nclear\n", 0)
	set("test:acme:acme_account.key", "-----BEGIN EC PRIVATE KEY-----\nlegacy name\n", 0)
	set("test:acme:tok+http-01", "tok.thumb", time.Hour)
	set("test:acme:lock:clear.example.com", "lock token", time.Minute)
	set("other:acme:clear.example.com", "-----BEGIN EC PRIVATE KEY-----\nother prefix\n", 0)
	set("test:acmeX", "not under the prefix", 0)
	for _, k := range []string{"old.example.com", "old2.example.com"} {
		if err := old.Put(ctx, k, []byte("under the old key")); err != nil {
			t.Fatal(err)
		}
	}
	if err := foreign.Put(ctx, "foreign.example.com", []byte("under a foreign key")); err != nil {
		t.Fatal(err)
	}
	var logs testlog.Buffer
	cache := testCache(t, c, true, &logs, testKeyOld)
	counts := cache.migrate(ctx)
	want := [nOutcomes]int{resealed: 2, migrated: 3, unknownKey: 1}
	if counts != want {
		t.Errorf("got outcomes %v; want %v", counts, want)
	}
	for _, k := range []string{"clear.example.com", "acme_account.key", "tok+http-01", "old.example.com", "old2.example.com"} {
		checkSealed(t, c, "test:acme:"+k)
	}
	for name, want := range map[string]string{
		"test:acme:lock:clear.example.com": "lock token",
		"other:acme:clear.example.com":     "-----BEGIN EC PRIVATE KEY-----\nother prefix\n",
		"test:acmeX":                       "not under the prefix",
	} {
		if got := c.Get(ctx, name).Val(); got != want {
			t.Errorf("%s: got %q; want %q, untouched", name, got, want)
		}
	}
	if _, _, err := foreign.keys.open("test:acme:foreign.example.com", []byte(c.Get(ctx, "test:acme:foreign.example.com").Val())); err != nil {
		t.Errorf("the value under a foreign key was changed: %v", err)
	}
	if !strings.Contains(logs.String(), "remove insecure_migrate_cleartext") {
		t.Errorf("no reminder to remove insecure_migrate_cleartext in %q", logs.String())
	}
	if again := cache.migrate(ctx); again != [nOutcomes]int{sealedCurrent: 5, unknownKey: 1} {
		t.Errorf("a second migration found %v; want everything sealed", again)
	}
	t.Run("without insecure_migrate_cleartext, values in clear stay unused", func(t *testing.T) {
		set("test:acme:clear2.example.com", "-----BEGIN EC PRIVATE KEY-----\nclear\n", 0)
		strict := testCache(t, c, false, &logs)
		if got := strict.migrate(ctx); got[clearIgnored] != 1 || got[migrated] != 0 {
			t.Errorf("got outcomes %v; want the value in clear ignored", got)
		}
		if got := c.Get(ctx, "test:acme:clear2.example.com").Val(); !strings.HasPrefix(got, "-----BEGIN") {
			t.Errorf("got %q; want the value left as it was", got)
		}
	})
}

// TestNewMigratesAtStart: a Manager built with insecure_migrate_cleartext
// seals the values in clear it finds under its prefix, for hosts it does
// not serve too, without a handshake; one built without it leaves them
// alone and migrates nothing.
func TestNewMigratesAtStart(t *testing.T) {
	addr := startRedis(t)
	c := redisClient(t, addr)
	ctx := context.Background()
	const name = "start:acme:gone.example.com" // a host no longer configured
	for _, tt := range []struct {
		name        string
		acceptClear bool
	}{{"without insecure_migrate_cleartext", false}, {"with insecure_migrate_cleartext", true}} {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Set(ctx, name, "-----BEGIN EC PRIVATE KEY-----\nold\n", 0).Err(); err != nil {
				t.Fatal(err)
			}
			var logs testlog.Buffer
			a := &config.ACME{DirectoryURL: "https://127.0.0.1:1/dir", Cache: config.StoreRedis,
				Hosts: []string{"a.example.com"}, EncryptionKey: testKey, InsecureMigrateCleartext: tt.acceptClear}
			m, err := New(&config.ListenerTLS{ACME: a}, Options{Redis: redisClient(t, addr), RedisKeyPrefix: "start:", Logger: logs.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			select {
			case <-m.issuer.migrated:
			case <-time.After(10 * time.Second):
				t.Fatal("the migration did not end")
			}
			if !tt.acceptClear {
				if got := c.Get(ctx, name).Val(); !strings.HasPrefix(got, "-----BEGIN") {
					t.Errorf("got %q; want the value left alone", got)
				}
				return
			}
			checkSealed(t, c, name)
			for _, want := range []string{"insecure_migrate_cleartext is on", "ACME cache migration done", "migrated_from_clear=1"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("no %q in the log:\n%s", want, logs.String())
				}
			}
		})
	}
}
