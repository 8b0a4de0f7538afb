package waf

import (
	"strconv"

	"github.com/rampart-proxy/rampart/config"
)

// Findings of the adapter's own, not of a SecLang rule, appear in audit
// events and in rampart_waf_rule_matches_total as matches of these rule
// ids, outside the CRS's ids and Coraza's recommended ones (2000xx).
const (
	// RuleRequestBodyBudget: the request body could not be held for
	// inspection within waf_buffer_limit (refused with 503 in block mode,
	// passed uninspected in detect mode).
	RuleRequestBodyBudget = 95100001
	// RuleResponseBodyLimit: the response body is larger than
	// response_body_limit (refused with 502, or only its start inspected).
	RuleResponseBodyLimit = 95100002
	// RuleResponseBodyBudget: the response body could not be held for
	// inspection within waf_buffer_limit.
	RuleResponseBodyBudget = 95100003
)

// note is a set of the adapter's findings on one transaction.
type note uint8

const (
	noteRequestBudget    note = 1 << iota // RuleRequestBodyBudget
	noteResponseBudget                    // RuleResponseBodyBudget
	noteResponseTooLarge                  // RuleResponseBodyLimit, refused
	noteResponseCut                       // RuleResponseBodyLimit, inspected in part
)

// overBudget reports a body refused or passed for lack of budget.
func (n note) overBudget() bool { return n&(noteRequestBudget|noteResponseBudget) != 0 }

// matches appends the rule-like matches of n to dst.
func (n note) matches(dst []RuleMatch, p *Policy) []RuleMatch {
	budget := "waf_buffer_limit"
	if p.budget != nil {
		budget += "=" + config.Size(p.budget.Limit()).String()
	}
	limit := "response_body_limit=" + config.Size(p.respLimit).String()
	if n&noteRequestBudget != 0 {
		dst = append(dst, RuleMatch{ID: RuleRequestBodyBudget, Msg: "Request body not inspected: the WAF buffer budget is spent", Data: budget})
	}
	if n&noteResponseBudget != 0 {
		dst = append(dst, RuleMatch{ID: RuleResponseBodyBudget, Msg: "Response body not inspected: the WAF buffer budget is spent", Data: budget})
	}
	if n&noteResponseTooLarge != 0 {
		dst = append(dst, RuleMatch{ID: RuleResponseBodyLimit, Msg: "Response body larger than response_body_limit: refused", Data: limit})
	}
	if n&noteResponseCut != 0 {
		dst = append(dst, RuleMatch{ID: RuleResponseBodyLimit, Msg: "Response body larger than response_body_limit: only its first " + strconv.FormatInt(p.respLimit, 10) + " bytes inspected", Data: limit})
	}
	return dst
}

// ids calls f with the rule id of each finding of n.
func (n note) ids(f func(int)) {
	if n&noteRequestBudget != 0 {
		f(RuleRequestBodyBudget)
	}
	if n&noteResponseBudget != 0 {
		f(RuleResponseBodyBudget)
	}
	if n&(noteResponseTooLarge|noteResponseCut) != 0 {
		f(RuleResponseBodyLimit)
	}
}
