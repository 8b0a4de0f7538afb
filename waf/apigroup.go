package waf

import (
	"strings"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
)

// The api group lets REST APIs through the CRS's protocol rules without
// hiding what they saw: CRS 911100 (method not allowed: the CRS allows GET,
// HEAD, POST and OPTIONS) and 920420 (request media type not allowed) still
// match, and are in the audit event, but rule 9500013, run after them and
// before the CRS blocking evaluation, takes their score back when the
// method is PUT, PATCH, DELETE or one of WebDAV's, or the media type has a +json or +xml
// suffix (application/merge-patch+json, application/rss+xml), is a CSP
// violation report (application/csp-report), or is text/plain or line-delimited JSON (application/x-ndjson, jsonl). Rules
// 9500011 and 9500012 parse such bodies as JSON or XML, rule 9500014 as
// JSON or text (rampart_text, textbody.go). An exclusion that
// removes 911100 or 920420 leaves nothing to take back: the action reads
// the rules that matched, never the request alone.

const (
	ruleMethodNotAllowed = 911100
	ruleTypeNotAllowed   = 920420
)

func init() {
	plugins.RegisterAction("rampart_api", func() plugintypes.Action { return apiAction{} })
}

// apiAction is rampart_api, the action of rule 9500013.
type apiAction struct{}

func (apiAction) Init(_ plugintypes.RuleMetadata, data string) error { return nil }

func (apiAction) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

func (apiAction) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	mt, ok := tx.(interface{ MatchedRules() []types.MatchedRule })
	if !ok {
		return
	}
	vars := tx.Variables()
	for _, mr := range mt.MatchedRules() {
		r := mr.Rule()
		switch {
		case r.ID() == ruleMethodNotAllowed && apiMethod(vars.RequestMethod().Get()):
		case r.ID() == ruleTypeNotAllowed && apiOrTextMediaType(first(vars.RequestHeaders().Get("content-type"))):
		default:
			continue
		}
		takeBack(vars.TX(), r, 1)
	}
}

// apiMethod reports whether the api group allows method beyond the CRS's:
// REST's and WebDAV's (RFC 4918). TRACE, TRACK, CONNECT and unknown
// methods keep the CRS's score.
func apiMethod(method string) bool {
	switch method {
	case "PUT", "PATCH", "DELETE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK":
		return true
	}
	return false
}

// apiOrTextMediaType reports whether the api group takes 920420's score
// back for Content-Type ct: apiMediaType or textMediaType.
func apiOrTextMediaType(ct string) bool { return apiMediaType(ct) || textMediaType(ct) }

// mediaType returns a Content-Type's media type, parameters aside, in
// lower case.
func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// apiMediaType reports whether a Content-Type is application/NAME+json,
// application/NAME+xml or application/csp-report, parameters aside: what
// rules 9500011 and 9500012 hand to the JSON and XML body processors.
func apiMediaType(ct string) bool {
	name, ok := strings.CutPrefix(mediaType(ct), "application/")
	if !ok {
		return false
	}
	if name == "csp-report" {
		return true // a browser's CSP violation report, JSON
	}
	base, ok := strings.CutSuffix(name, "+json")
	if !ok {
		base, ok = strings.CutSuffix(name, "+xml")
	}
	if !ok || base == "" {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
