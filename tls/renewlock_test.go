package tls

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
)

// recordingRT stands in for the ACME server behind an issuer's transport:
// it records the bodies of the requests that reach it.
type recordingRT struct {
	mu     sync.Mutex
	bodies []string
}

func (r *recordingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.bodies = append(r.bodies, string(b))
	r.mu.Unlock()
	return &http.Response{StatusCode: http.StatusCreated, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

func (r *recordingRT) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// redisIssuer is an issuer with acme.cache: redis on the server at addr,
// holding host, whose ACME requests end at a recordingRT.
func redisIssuer(t *testing.T, addr, host string) (*issuer, *recordingRT) {
	t.Helper()
	log := slog.New(slog.DiscardHandler) // as Manager defaults to
	iss, err := newIssuer("tls.acme", &config.ACME{Cache: config.StoreRedis, DirectoryURL: "https://127.0.0.1:1/dir"},
		nil, Options{Redis: redisClient(t, addr), Logger: log}, "renewtest:", testKeyring(t))
	if err != nil {
		t.Fatal(err)
	}
	iss.now = time.Now
	iss.hosts[host] = &hostState{host: host, sem: make(chan struct{}, 1)}
	rt := &recordingRT{}
	iss.transport.next = rt
	return iss, rt
}

// jwsRequest is an ACME POST whose payload is payload, as acme.Client
// sends it (the signature is not checked on the way).
func jwsRequest(ctx context.Context, t *testing.T, payload string) *http.Request {
	t.Helper()
	body := fmt.Sprintf(`{"protected":"e30","payload":%q,"signature":"c2ln"}`, base64.RawURLEncoding.EncodeToString([]byte(payload)))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://acme.test/new-order", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/jose+json")
	return req
}

func orderPayload(host string) string {
	return `{"identifiers":[{"type":"dns","value":"` + host + `"}]}`
}

// cachedCert stores a certificate for host in iss's cache under key (host,
// or host+"+rsa"), as autocert does (key, then chain), expiring at notAfter
// (issued an hour ago).
func cachedCert(t *testing.T, iss *issuer, key, host string, notAfter time.Time) {
	t.Helper()
	leaf := testcert.NewCA(t, "Renewal CA").Issue(t, host, notAfter, false, host)
	if err := iss.cache.next.Put(context.Background(), key, append(leaf.KeyPEM, leaf.CertPEM...)); err != nil {
		t.Fatal(err)
	}
}

// TestFreshInCache: a certificate counts as renewed elsewhere only while
// autocert would not renew it yet (a third of its lifetime before the end).
func TestFreshInCache(t *testing.T) {
	addr := startRedis(t)
	const host = "fresh.example.com"
	iss, _ := redisIssuer(t, addr, host)
	ctx := context.Background()
	cachedCert(t, iss, host, host, time.Now().Add(90*24*time.Hour))
	cachedCert(t, iss, host+"+rsa", host, time.Now().Add(10*time.Minute)) // 10 of 70 minutes left: due
	for key, want := range map[string]bool{host: true, host + "+rsa": false, "other.example.com": false} {
		if got := iss.freshInCache(ctx, key); got != want {
			t.Errorf("freshInCache(%q) = %v; want %v", key, got, want)
		}
	}
}

// finalizePayload is a finalization's payload with a CSR for host, with an
// RSA key when rsaKey is set (autocert's certificate for old clients).
func finalizePayload(t *testing.T, host string, rsaKey bool) string {
	t.Helper()
	var key crypto.Signer
	var err error
	if rsaKey {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{host}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return `{"csr":"` + base64.RawURLEncoding.EncodeToString(der) + `"}`
}

// TestRenewalLock: a new order that obtain did not start (autocert's
// background renewal) takes the host's lock among instances sharing Redis
// and keeps it until the new certificate is stored; the other instance's
// order waits for it, and its finalization is refused when the certificate
// it asks for is then fresh in the cache: no second certificate is issued.
func TestRenewalLock(t *testing.T) {
	addr := startRedis(t)
	const host = "renew.example.com"
	a, aRT := redisIssuer(t, addr, host)
	b, bRT := redisIssuer(t, addr, host)
	ctx := context.Background()
	send := func(iss *issuer, payload string) error {
		resp, err := iss.transport.RoundTrip(jwsRequest(ctx, t, payload))
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	// The cached certificate is due (20 minutes left of 80: autocert
	// renews a third of the lifetime before the end): A's renewal order
	// goes out, and A holds the lock until it stores the new one.
	cachedCert(t, a, host, host, time.Now().Add(20*time.Minute))
	if err := send(a, orderPayload(host)); err != nil {
		t.Fatalf("A's renewal order: %v", err)
	}
	if aRT.count() != 1 || !strings.Contains(aRT.bodies[0], `"payload"`) {
		t.Fatalf("A's order reached the ACME server %d times (body %q); want once, whole", aRT.count(), aRT.bodies)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := b.lock(short, host)
	cancel()
	if err == nil {
		t.Fatal("B took the lock while A's renewal order was in flight")
	}

	// B's renewal timer fires now: its order waits for A's lock.
	done := make(chan error, 1)
	go func() { done <- send(b, orderPayload(host)) }()
	time.Sleep(2 * lockPoll)
	select {
	case err := <-done:
		t.Fatalf("B's order did not wait for A's lock: %v", err)
	default:
	}
	// A's finalization of a due certificate goes out; A stores the new
	// certificate, which releases the lock: B's order goes out.
	if err := send(a, finalizePayload(t, host, false)); err != nil {
		t.Fatalf("A's finalization: %v", err)
	}
	leaf := testcert.NewCA(t, "Renewal CA").Issue(t, host, time.Now().Add(90*24*time.Hour), false, host)
	if err := a.cache.Put(ctx, host, append(leaf.KeyPEM, leaf.CertPEM...)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("B's order after A's lock: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("B's order still waits after A stored its certificate: A kept the lock")
	}
	// B's finalization asks for the ECDSA certificate that A has just
	// renewed: refused, and B's lock is released.
	if err := send(b, finalizePayload(t, host, false)); !errors.Is(err, errRenewedElsewhere) {
		t.Fatalf("B's finalization after A renewed: %v; want errRenewedElsewhere", err)
	}
	if n := bRT.count(); n != 1 {
		t.Fatalf("%d of B's requests reached the ACME server; want 1 (the order, not the finalization)", n)
	}
	short, cancel = context.WithTimeout(ctx, 2*time.Second)
	release, err := a.lock(short, host)
	cancel()
	if err != nil {
		t.Fatalf("the lock after B's refused finalization: %v", err)
	}
	release()

	// An RSA certificate is another certificate: an order for it (an old
	// client's first) is finalized even though the ECDSA one is fresh.
	if err := send(b, orderPayload(host)); err != nil {
		t.Fatalf("B's RSA order: %v", err)
	}
	if err := send(b, finalizePayload(t, host, true)); err != nil {
		t.Fatalf("B's RSA finalization: %v; want it sent (no RSA certificate is cached)", err)
	}
	if n := bRT.count(); n != 3 {
		t.Fatalf("%d of B's requests reached the ACME server; want 3", n)
	}
}

// TestRenewalLockPassThrough: the requests beforeOrder leaves alone reach
// the ACME server unchanged and without waiting: an order obtain makes
// while it holds the lock, and every request that is not a new order.
func TestRenewalLockPassThrough(t *testing.T) {
	addr := startRedis(t)
	const host = "first.example.com"
	iss, rt := redisIssuer(t, addr, host)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	release, err := iss.lock(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	iss.hosts[host].ordering.Store(true) // as obtain does while it holds the lock
	for _, payload := range []string{orderPayload(host), "", `{"status":"deactivated"}`} {
		req := jwsRequest(ctx, t, payload)
		resp, err := iss.transport.RoundTrip(req)
		if err != nil {
			t.Fatalf("payload %q: %v", payload, err)
		}
		resp.Body.Close()
	}
	iss.hosts[host].ordering.Store(false)
	// An order of two names is not autocert's: it goes out as it is.
	resp, err := iss.transport.RoundTrip(jwsRequest(ctx, t, `{"identifiers":[{"type":"dns","value":"a.example.com"},{"type":"dns","value":"b.example.com"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if rt.count() != 4 {
		t.Fatalf("%d requests reached the ACME server; want 4", rt.count())
	}
	want := `"payload":"` + base64.RawURLEncoding.EncodeToString([]byte(orderPayload(host))) + `"`
	if !strings.Contains(rt.bodies[0], want) {
		t.Errorf("the order's body changed on the way: %q", rt.bodies[0])
	}
}
