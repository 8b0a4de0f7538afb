// Package waf inspects requests with Coraza and the embedded OWASP Core Rule
// Set (CRS v4), one compiled engine per configured policy.
//
// Compile builds a Policy once per configuration (never per request): the
// recommended engine settings, the CRS setup with the policy's paranoia
// level and anomaly threshold, the policy's exclusions, the CRS rules, then
// the policy's own rules and rule files. Validate compiles policies to check
// them without serving traffic (rampart validate).
//
// Policy.Inspect is the fasthttp adapter: it runs the request phases and
// returns a Verdict that says whether to answer instead of forwarding. The
// caller always closes the Verdict once the request is done. Audit events
// (one JSON line per transaction that matched a rule) are written off the
// request path by an AuditLog; Hooks report counts to the metrics package.
//
// The Makefile builds Coraza with a patch of Rampart's that makes its rule
// engine cheaper and changes no verdict (corazapatch/README.md);
// CorazaBuild says whether a binary has it.
package waf
