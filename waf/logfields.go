package waf

import (
	"strconv"
)

// maxLoggedIDs bounds the rule ids a verdict keeps for the access log and
// traces: the first ones matched, enough to say why; the audit event has
// them all.
const maxLoggedIDs = 16

// keepRuleID records a logged rule's id, once, within maxLoggedIDs.
func (v *Verdict) keepRuleID(id int) {
	for _, k := range v.ruleIDs[:v.nRules] {
		if int(k) == id {
			return
		}
	}
	if v.nRules < maxLoggedIDs {
		v.ruleIDs[v.nRules] = int32(id)
		v.nRules++
	}
}

// Outcome is the inspection's outcome so far, for the access log and
// traces: blocked, detected (rules that log matched, or a finding of the
// adapter's own, without blocking: detect mode, or a score under the
// threshold), or pass. The request phases have run; response inspection
// may still change it.
func (v *Verdict) Outcome() Action {
	if v == nil {
		return ActionPass
	}
	if v.Action != ActionPass {
		return v.Action
	}
	if v.note != 0 || v.nRules > 0 {
		return ActionDetected
	}
	if v.tx != nil {
		for _, m := range v.tx.MatchedRules() {
			if isLogged(m) {
				return ActionDetected
			}
		}
	}
	return ActionPass
}

// AppendRuleIDs appends the ids of the rules that matched and log (at most
// maxLoggedIDs, in the order matched), and of the adapter's own findings,
// separated by sep. It appends nothing for a nil verdict or a clean one.
func (v *Verdict) AppendRuleIDs(dst []byte, sep byte) []byte {
	if v == nil {
		return dst
	}
	n := 0
	add := func(id int) {
		if n > 0 {
			dst = append(dst, sep)
		}
		dst = strconv.AppendInt(dst, int64(id), 10)
		n++
	}
	if v.tx != nil { // still open: the matches so far
		for _, m := range v.tx.MatchedRules() {
			if n < maxLoggedIDs && isLogged(m) {
				add(m.Rule().ID())
			}
		}
	} else {
		for _, id := range v.ruleIDs[:v.nRules] {
			add(int(id))
		}
	}
	v.note.ids(add)
	return dst
}
