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
// Rampart's own rules (rampart.go, docs/waf-rules.md) load between the
// CRS setup and the CRS rules when the policy's rampart_rules is on. The
// decoding layer (decode.go, expand.go) is a Go pass, a Coraza action run
// once at the start of phase 2, that adds the decoded forms of every value
// and the values the CRS does not read (custom headers, path segments,
// multipart names, GraphQL strings) to ARGS_PATH, so that every CRS rule
// and Rampart's patterns inspect them as arguments. It was chosen over
// Coraza transformations or operators by cost: those run once per rule and
// target, hundreds of times per value, where the pass reads each value
// once and adds nothing for an ordinary one. Rampart's patterns run in one
// rule with byte prefilters (operator.go); the prose group (shapes.go)
// takes back the score of CRS matches on values whose shape the CRS
// misreads, before the CRS blocking evaluation.
//
// The Makefile builds Coraza with a patch of Rampart's that makes its rule
// engine cheaper and changes no verdict (corazapatch/README.md);
// CorazaBuild says whether a binary has it. With the patch, the @rx
// operator's prefilters (rxfilter.go), @pm's patterns, @detectXSS's and
// Rampart's detectors' needs are checked for the whole rule set in one
// automaton pass per value (setfilter.go, patch items 6 and 16), and an
// operator runs only on the values that pass its checks; a value the
// rule's transformation chain would leave unchanged is decided before the
// chain runs, and a collection no value of which passes is skipped whole
// (items 15 and 17; fuse.go declares the fused chains' steps).
package waf
