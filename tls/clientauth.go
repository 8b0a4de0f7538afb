package tls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/rampart-proxy/rampart/config"
)

// clientAuth fills the client certificate fields of cfg from t. p is the
// field path of t, for errors.
func clientAuth(p string, t *config.ListenerTLS, cfg *tls.Config) error {
	if t.ClientCAFile == "" {
		return nil
	}
	pemBytes, err := os.ReadFile(t.ClientCAFile)
	if err != nil {
		return fmt.Errorf("%s.client_ca_file: %w", p, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return fmt.Errorf("%s.client_ca_file: %q holds no PEM certificate", p, t.ClientCAFile)
	}
	cfg.ClientCAs = pool
	switch t.ClientAuth {
	case config.ClientAuthVerifyIfGiven:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case config.ClientAuthRequire, "":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return fmt.Errorf("%s.client_auth: %q must be require or verify_if_given", p, t.ClientAuth)
	}
	return nil
}

// ClientSubject returns the subject of the client certificate that the
// handshake verified against client_ca_file, in the RFC 2253 form of
// pkix.Name.String ("CN=alice,O=Example"), and false when the client sent
// none (client_auth: verify_if_given) or the listener does not ask for one.
//
// It allocates: call it once per connection, after the handshake, and keep
// the result with the connection. A proxy that forwards the subject in a
// header must also delete that header from every downstream request, or a
// client without a certificate could send its own.
func ClientSubject(cs *tls.ConnectionState) (string, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", false
	}
	return cs.VerifiedChains[0][0].Subject.String(), true
}
