package tls

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Renewals under acme.cache: redis take the same per-host lock as first
// orders. autocert renews in the background, out of the issuer's sight: it
// re-reads the cache first and then orders, so two instances whose renewal
// timers fire close together would both order. The issuer sees the requests
// go out instead, in its ACME transport:
//   - before a new order for a host that obtain is not already ordering, it
//     takes the host's lock: the other instance's renewal waits for it;
//   - at the order's finalization, the CSR says which certificate is being
//     made (ECDSA, or RSA for old clients). If the shared cache now holds
//     that certificate and it is not due yet, another instance renewed it
//     while this one waited: the finalization is refused (no certificate is
//     issued), autocert's renewal fails, and its retry (30 to 60 minutes
//     later) loads that certificate from the cache. (An order alone cannot
//     tell: refusing an order for a host whose ECDSA certificate is fresh
//     would also refuse the first RSA certificate an old client needs.)
//   - the lock is kept until the new certificate is stored, or for
//     orderWait if the order fails.

// errRenewedElsewhere refuses a renewal that another instance has made.
var errRenewedElsewhere = errors.New("tls: another instance has renewed this certificate; the next renewal check loads it from the shared cache")

// renewal is a lock held for an order that obtain did not start.
type renewal struct {
	release func()
	timer   *time.Timer
}

// acmeCall is what the transport needs to know of an ACME request.
type acmeCall struct {
	order    string // a new order (RFC 8555 section 7.4) of this one host
	finalize string // a finalization: the cache key of the certificate its CSR asks for
}

// readACMECall reads req, a request of the issuer's ACME client (a JWS
// whose payload lists identifiers for a new order, or carries a CSR for a
// finalization), and returns what it is with req, its body restored. An
// order of several names is not autocert's: it is left alone.
func readACMECall(req *http.Request) (acmeCall, *http.Request, error) {
	var call acmeCall
	if req.Method != http.MethodPost || req.Body == nil ||
		!strings.HasPrefix(req.Header.Get("Content-Type"), "application/jose+json") {
		return call, req, nil
	}
	body, err := io.ReadAll(req.Body) // our own ACME client's: a few KiB
	req.Body.Close()
	if err != nil {
		return call, req, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil || jws.Payload == "" {
		return call, out, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return call, out, nil
	}
	var p struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
		CSR string `json:"csr"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return call, out, nil
	}
	if len(p.Identifiers) == 1 && p.Identifiers[0].Type == "dns" {
		call.order = p.Identifiers[0].Value
	}
	if der, err := base64.RawURLEncoding.DecodeString(p.CSR); err == nil && p.CSR != "" {
		if csr, err := x509.ParseCertificateRequest(der); err == nil && len(csr.DNSNames) == 1 {
			call.finalize = csr.DNSNames[0]
			if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
				call.finalize += rsaKeySuffix
			}
		}
	}
	return call, out, nil
}

// beforeOrder runs in the ACME transport before a new order for host goes
// out: it takes the host's lock unless obtain holds it. An error stops the
// order.
func (iss *issuer) beforeOrder(ctx context.Context, host string) error {
	iss.mu.Lock()
	hs := iss.hosts[host]
	iss.mu.Unlock()
	if hs == nil || hs.ordering.Load() {
		return nil // not ours (autocert's host policy refuses it), or obtain holds the lock
	}
	release, err := iss.lock(ctx, host)
	if err != nil {
		return err
	}
	r := &renewal{release: release}
	r.timer = time.AfterFunc(orderWait, func() { iss.endRenewal(host, r) })
	iss.mu.Lock()
	old := iss.renewals[host]
	iss.renewals[host] = r
	iss.mu.Unlock()
	if old != nil { // cannot happen: the lock was held by old
		old.timer.Stop()
		old.release()
	}
	return nil
}

// beforeFinalize runs in the ACME transport before an order is finalized
// for the certificate cached under key: an order that took the lock in
// beforeOrder is refused when that certificate is now in the cache and not
// due.
func (iss *issuer) beforeFinalize(ctx context.Context, key string) error {
	host := certHost(key)
	iss.mu.Lock()
	r := iss.renewals[host]
	iss.mu.Unlock()
	if r == nil || !iss.freshInCache(ctx, key) {
		return nil
	}
	iss.endRenewal(host, r)
	iss.log.Info("tls: certificate renewal dropped: another instance renewed it", "host", host, "certificate", key)
	return errRenewedElsewhere
}

// rsaKeySuffix ends autocert's cache key of an RSA certificate; an ECDSA
// one's key is the bare host.
const rsaKeySuffix = "+rsa"

// certHost is the host of the certificate autocert caches under key.
func certHost(key string) string { return strings.TrimSuffix(key, rsaKeySuffix) }

// stored is told of every certificate autocert puts in the cache: the
// renewal of its host is over.
func (iss *issuer) stored(key string) {
	host := certHost(key)
	iss.mu.Lock()
	r := iss.renewals[host]
	iss.mu.Unlock()
	if r != nil {
		iss.endRenewal(host, r)
	}
}

// endRenewal releases r's lock, once.
func (iss *issuer) endRenewal(host string, r *renewal) {
	iss.mu.Lock()
	if iss.renewals[host] != r {
		iss.mu.Unlock()
		return
	}
	delete(iss.renewals, host)
	iss.mu.Unlock()
	r.timer.Stop()
	r.release()
}

// freshInCache reports whether the cache holds a certificate under key
// that autocert would not renew yet: it renews a third of the lifetime (at
// most 30 days, or RenewBefore) before the end, give or take a jitter that
// only ever delays it.
func (iss *issuer) freshInCache(ctx context.Context, key string) bool {
	data, err := iss.cache.Get(ctx, key)
	if err != nil {
		return false
	}
	leaf := firstCertificate(data)
	return leaf != nil && iss.now().Before(leaf.NotAfter.Add(-renewThreshold(leaf, iss.ac.RenewBefore)))
}

// renewThreshold is how long before leaf's end autocert renews it.
func renewThreshold(leaf *x509.Certificate, renewBefore time.Duration) time.Duration {
	if renewBefore > 0 {
		return min(renewBefore, 30*24*time.Hour)
	}
	return min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
}

// firstCertificate parses the first certificate in autocert's cache entry
// (a private key, then the chain, in PEM); nil if there is none.
func firstCertificate(data []byte) *x509.Certificate {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == "CERTIFICATE" {
			leaf, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil
			}
			return leaf
		}
	}
}
