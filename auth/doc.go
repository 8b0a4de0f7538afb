// Package auth verifies who a request comes from, for the proxy's
// authentication policies: HTTP basic credentials against bcrypt hashes
// (Basic), a bearer JSON Web Token against an issuer's published keys (JWT),
// and an outside authentication service asked about each request (Forward).
//
// Each verifier is built once per policy and shared by every request of the
// routes that use it; all are safe for concurrent use. They know nothing of
// the proxy's configuration or pipeline: the proxy turns their results into
// answers (401, 429, 503) and header edits.
package auth
