package tls

import (
	"bytes"
	"context"
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
// timers fire close together would both order. The issuer sees the order
// go out instead, in its ACME transport: before a new order for a host that
// obtain is not already ordering, it takes the host's lock, and then looks
// in the shared cache again. A certificate there that is not due yet was
// renewed by another instance while this one waited: the order is refused,
// autocert's renewal fails, and its retry (30 to 60 minutes later) loads
// that certificate from the cache. Otherwise the lock is kept until the new
// certificate is stored, or for orderWait if the order fails.

// errRenewedElsewhere refuses a renewal that another instance has made.
var errRenewedElsewhere = errors.New("tls: another instance has renewed this certificate; the next renewal check loads it from the shared cache")

// renewal is a lock held for an order that obtain did not start.
type renewal struct {
	release func()
	timer   *time.Timer
}

// newOrderHost returns the host that an ACME newOrder request (RFC 8555
// section 7.4: a JWS whose payload lists identifiers) asks a certificate
// for, and req with its body restored; "" for any other request, or an
// order of several names (autocert orders one host at a time).
func newOrderHost(req *http.Request) (string, *http.Request, error) {
	if req.Method != http.MethodPost || req.Body == nil ||
		!strings.HasPrefix(req.Header.Get("Content-Type"), "application/jose+json") {
		return "", req, nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	req.Body.Close()
	if err != nil {
		return "", req, err
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	var jws struct {
		Payload string `json:"payload"`
	}
	if json.Unmarshal(body, &jws) != nil || jws.Payload == "" {
		return "", out, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return "", out, nil
	}
	var order struct {
		Identifiers []struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"identifiers"`
	}
	if json.Unmarshal(payload, &order) != nil || len(order.Identifiers) != 1 || order.Identifiers[0].Type != "dns" {
		return "", out, nil
	}
	return order.Identifiers[0].Value, out, nil
}

// beforeOrder runs in the ACME transport before a new order for host goes
// out: see the top of this file. An error stops the order.
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
	if iss.renewedInCache(ctx, host) {
		release()
		iss.log.Info("tls: certificate renewal skipped: another instance renewed it", "host", host)
		return errRenewedElsewhere
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

// stored is told of every certificate autocert puts in the cache (key: the
// host, with "+rsa" for an RSA one): the renewal of host is over.
func (iss *issuer) stored(key string) {
	host := strings.TrimSuffix(key, "+rsa")
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

// renewedInCache reports whether the shared cache holds a certificate for
// host that autocert would not renew yet: it renews a third of the
// lifetime (at most 30 days, or RenewBefore) before the end, give or take a
// jitter that only ever delays it.
func (iss *issuer) renewedInCache(ctx context.Context, host string) bool {
	data, err := iss.cache.Get(ctx, host)
	if err != nil {
		return false
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return false
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return false
		}
		threshold := min(leaf.NotAfter.Sub(leaf.NotBefore)/3, 30*24*time.Hour)
		if rb := iss.ac.RenewBefore; rb > 0 {
			threshold = min(rb, 30*24*time.Hour)
		}
		return iss.now().Before(leaf.NotAfter.Add(-threshold))
	}
}
