package tls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// errRetired is what a retired issuer's ACME client answers every request.
var errRetired = errors.New("tls: ACME issuer retired: no listener uses it any more")

// acmeHTTPTimeout bounds one request to the ACME server.
const acmeHTTPTimeout = time.Minute

// newACMEHTTPClient returns the ACME client's HTTP client: the system roots
// plus caPEM (acme.ca_file), behind an acmeTransport.
func newACMEHTTPClient(caPEM []byte) (*http.Client, *acmeTransport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, nil, errors.New("holds no PEM certificate")
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	t := &acmeTransport{next: base}
	return &http.Client{Transport: t, Timeout: acmeHTTPTimeout}, t, nil
}

// acmeTransport sits between autocert and the ACME server. It refuses every
// request once its issuer is retired, and it reads the reason of an invalid
// authorization, which autocert drops (it moves on to the next challenge
// type and reports only that none worked).
type acmeTransport struct {
	next   http.RoundTripper
	closed atomic.Bool
	note   func(host, reason string) // set once, before the first request
	// beforeOrder and beforeFinalize, when set (before the first request),
	// run before each new order and each finalization goes out (see
	// renewlock.go); an error stops the request.
	beforeOrder    func(ctx context.Context, host string) error
	beforeFinalize func(ctx context.Context, key string) error
}

// authzProblem is the part of an ACME authorization object (RFC 8555
// 7.1.4) that says why it is invalid.
type authzProblem struct {
	Status     string `json:"status"`
	Identifier struct {
		Value string `json:"value"`
	} `json:"identifier"`
	Challenges []struct {
		Type  string `json:"type"`
		Error *struct {
			Type   string `json:"type"`
			Detail string `json:"detail"`
		} `json:"error"`
	} `json:"challenges"`
}

func (t *acmeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.closed.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errRetired
	}
	if t.beforeOrder != nil {
		call, r, err := readACMECall(req)
		if err != nil {
			return nil, err
		}
		req = r
		switch {
		case call.order != "":
			err = t.beforeOrder(req.Context(), call.order)
		case call.finalize != "":
			err = t.beforeFinalize(req.Context(), call.finalize)
		}
		if err != nil {
			req.Body.Close()
			return nil, err
		}
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || t.note == nil || req.Method != http.MethodPost ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var z authzProblem
	if json.Unmarshal(body, &z) != nil || z.Status != "invalid" || z.Identifier.Value == "" {
		return resp, nil
	}
	var reasons []string
	for _, c := range z.Challenges {
		if c.Error != nil {
			reasons = append(reasons, c.Type+": "+c.Error.Type+": "+c.Error.Detail)
		}
	}
	if len(reasons) > 0 {
		t.note(z.Identifier.Value, strings.Join(reasons, "; "))
	}
	return resp, nil
}
