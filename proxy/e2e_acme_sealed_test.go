package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// e2eACMEKey is the acme.encryption_key of the tests' configs with
// cache: redis (32 bytes, base64).
const e2eACMEKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

// acmeRedisValues returns every value under the ACME prefix of the e2e
// Redis config ("e2e:acme:"), the order lock excepted.
func acmeRedisValues(t *testing.T, c *redis.Client) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	for _, k := range c.Keys(ctx, "e2e:acme:*").Val() {
		if strings.HasPrefix(k, "e2e:acme:lock:") {
			continue
		}
		v, err := c.Get(ctx, k).Bytes()
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		out[k] = v
	}
	return out
}

// inClear reports whether v shows a PEM block or a private key.
func inClear(v []byte) bool {
	b, _ := pem.Decode(v)
	return b != nil || bytes.Contains(v, []byte("PRIVATE KEY")) || bytes.Contains(v, []byte("-----BEGIN"))
}

// TestE2EACMERedisSealed: with acme.cache: redis, what the proxy keeps in
// Redis (the account key, the certificates and their keys) is sealed, so
// that someone who can read Redis learns no key and someone who can write
// to it cannot choose the certificate served:
//   - after an order, no value in Redis shows a PEM block;
//   - a certificate and key planted in clear for a host are not served: the
//     proxy orders one from the CA instead;
//   - a sealed value copied from another host's key, or modified, is not
//     served either;
//   - with insecure_migrate_cleartext (the upgrade from a Rampart that
//     stored in clear), a value in clear is served and sealed in place.
func TestE2EACMERedisSealed(t *testing.T) {
	rd := startE2ERedis(t)
	rc := redis.NewClient(&redis.Options{Addr: rd.Addr})
	t.Cleanup(func() { rc.Close() })
	webAddr, tlsAddr := freeAddr(t), freeAddr(t)
	_, webPort, _ := net.SplitHostPort(webAddr)
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	pb := startPebble(t, webPort, tlsPort)
	up := okUpstream(t)
	const (
		issued   = "issued.rampart.test"
		planted  = "planted.rampart.test"
		copied   = "copied.rampart.test"
		modified = "modified.rampart.test"
		legacy   = "legacy.rampart.test"
	)
	yaml := acmeProxyConfig(pb, webAddr, tlsAddr, "", rd.Addr, up.addr(), issued, planted, copied, modified, legacy)
	p := startProxy(t, yaml)
	addr := p.srv.Addr("websecure")
	root, _ := pb.Root(t)
	ctx := context.Background()
	attacker := testcert.NewCA(t, "Attacker CA")
	plant := func(host string) string {
		leaf := attacker.Issue(t, host, time.Time{}, false, host)
		if err := rc.Set(ctx, "e2e:acme:"+host, append(bytes.Clone(leaf.KeyPEM), leaf.CertPEM...), 0).Err(); err != nil {
			t.Fatal(err)
		}
		return leaf.Cert.SerialNumber.String()
	}

	_, cs := acmeGet(t, addr, issued, root)
	issuedSerial := servedSerial(cs)
	t.Run("nothing in clear after an order", func(t *testing.T) {
		values := acmeRedisValues(t, rc)
		for _, k := range []string{"e2e:acme:" + issued, "e2e:acme:acme_account+key"} {
			if values[k] == nil {
				t.Errorf("no %s in Redis; got %d keys", k, len(values))
			}
		}
		for k, v := range values {
			if inClear(v) {
				t.Errorf("%s holds a PEM block in clear: %.60q", k, v)
			}
		}
	})
	t.Run("a certificate planted in clear is not served", func(t *testing.T) {
		serial := plant(planted)
		orders := pb.Orders()
		// acmeGet verifies against Pebble's root: the planted certificate
		// fails it.
		if _, cs := acmeGet(t, addr, planted, root); servedSerial(cs) == serial {
			t.Fatal("the planted certificate was served")
		}
		if n := pb.Orders(); n != orders+1 {
			t.Errorf("got %d orders; want %d: one in place of the planted value", n, orders+1)
		}
		if v := acmeRedisValues(t, rc)["e2e:acme:"+planted]; inClear(v) {
			t.Errorf("the planted value is still in Redis in clear")
		}
	})
	t.Run("a sealed value copied or modified is not served", func(t *testing.T) {
		sealed, err := rc.Get(ctx, "e2e:acme:"+issued).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		tampered := bytes.Clone(sealed)
		tampered[len(tampered)-20] ^= 0x40
		for host, v := range map[string][]byte{copied: sealed, modified: tampered} {
			if err := rc.Set(ctx, "e2e:acme:"+host, v, 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, cs := acmeGet(t, addr, host, root) // checks the SAN is host
			if servedSerial(cs) == issuedSerial {
				t.Errorf("%s: served %s's certificate", host, issued)
			}
		}
	})
	t.Run("insecure_migrate_cleartext serves a value in clear and seals it", func(t *testing.T) {
		serial := plant(legacy)
		cfg, err := config.Parse([]byte(strings.Replace(yaml, "encryption_key: ", "insecure_migrate_cleartext: true\n        encryption_key: ", 1)), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := p.srv.Reload(cfg); err != nil || !changed {
			t.Fatalf("Reload: changed %v, %v", changed, err)
		}
		orders := pb.Orders()
		_, cs, err := tlsGet(addr, &tls.Config{ServerName: legacy, RootCAs: testcert.Pool(attacker.PEM)}, legacy, "/")
		if err != nil {
			t.Fatalf("GET https://%s/: %v", legacy, err)
		}
		if got := servedSerial(cs); got != serial {
			t.Errorf("got serial %s; want %s, the value in clear", got, serial)
		}
		if n := pb.Orders(); n != orders {
			t.Errorf("got %d orders; want %d: none", n, orders)
		}
		for k, v := range acmeRedisValues(t, rc) {
			if inClear(v) {
				t.Errorf("%s is still in clear after the migration", k)
			}
		}
	})
}

// TestRedactACMEKeys: GET /api/v1/config never shows the keys that seal
// the ACME cache.
func TestRedactACMEKeys(t *testing.T) {
	cfg := &config.Config{Listeners: map[string]*config.Listener{"websecure": {TLS: &config.ListenerTLS{ACME: &config.ACME{
		Cache: config.StoreRedis, EncryptionKey: e2eACMEKey, PreviousEncryptionKeys: []string{"old-key-base64"},
	}}}}}
	body, err := json.Marshal(redactConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{e2eACMEKey, "old-key-base64"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("a key shows in %s", body)
		}
	}
}
