// Package eval measures a WAF policy: it replays labelled attack and
// benign requests, in process through a compiled waf.Policy (Local) or at
// a running Rampart over HTTP (Remote), and tabulates what was blocked by
// attack class, by placement and by encoding, and which benign requests
// were refused and by which rules (Report).
//
// The corpus is embedded (corpus/): attack payloads by class, imported
// from PayloadsAllTheThings by Import (see corpus/attacks/README.md for
// the source, licence and filter), and benign requests and values written
// for Rampart (corpus/benign). Corpus.Cases places each payload, encoded
// each way (Encode), in each placement (Build), deterministically.
// `rampart waf eval` is the command line; docs/waf-eval.md the guide.
package eval
