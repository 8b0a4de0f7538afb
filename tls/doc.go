// Package tls terminates TLS for the proxy's listeners: static certificates
// chosen by SNI, automatic certificates from an ACME server through
// golang.org/x/crypto/acme/autocert (TLS-ALPN-01 in the handshake, HTTP-01
// through [Manager.HTTPChallenge] on plain listeners), a certificate cache on
// disk or shared through Redis with a lock (every value sealed with
// AES-256-GCM under acme.encryption_key: seal.go), and client certificate
// authentication.
//
// Importers name it proxytls where it meets crypto/tls:
//
//	import proxytls "github.com/rampart-proxy/rampart/tls"
//
// A [Manager] is built from one listener's config.ListenerTLS and is
// immutable afterwards; a reload builds a new one (re-reading every file).
// State that must outlive a rebuild (autocert's certificates in memory, its
// renewal timers, the back-off of failed orders) lives in [Issuers], keyed by
// the ACME account's identity, so a reload neither orders again nor starts a
// second set of renewal timers.
package tls
