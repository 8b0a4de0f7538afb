package config

import (
	"slices"
	"strconv"
	"strings"
)

// wafs checks each WAF policy.
func (v *validator) wafs() {
	for _, name := range sortedKeys(v.c.WAF) {
		if p := v.c.WAF[name]; p != nil {
			v.waf("waf."+name, p)
		}
	}
}

// waf checks one WAF policy at p.
func (v *validator) waf(p string, w *WAFPolicy) {
	if !oneOf(w.Mode, WAFModeOff, WAFModeDetect, WAFModeBlock) {
		v.errorf(p+".mode", "%q must be off, detect or block", w.Mode)
	}
	if w.ParanoiaLevel < 1 || w.ParanoiaLevel > 4 {
		v.errorf(p+".paranoia_level", "%d must be from 1 to 4", w.ParanoiaLevel)
	}
	if w.AnomalyThreshold < 1 {
		v.errorf(p+".anomaly_threshold", "%d must be at least 1", w.AnomalyThreshold)
	}
	if w.RequestBodyLimit < 0 {
		v.errorf(p+".request_body_limit", "must not be negative")
	}
	if !oneOf(w.RequestBodyLimitAction, BodyLimitReject, BodyLimitPartial) {
		v.errorf(p+".request_body_limit_action", "%q must be reject or partial", w.RequestBodyLimitAction)
	}
	if w.MaxArguments < 0 {
		v.errorf(p+".max_arguments", "must not be negative")
	}
	if w.LimitStatus != 400 && w.LimitStatus != 403 {
		v.errorf(p+".limit_status", "%d must be 400 or 403", w.LimitStatus)
	}
	if w.ResponseBodyLimit < 0 {
		v.errorf(p+".response_body_limit", "must not be negative")
	}
	if !oneOf(w.ResponseBodyLimitAction, BodyLimitReject, BodyLimitPartial) {
		v.errorf(p+".response_body_limit_action", "%q must be reject or partial", w.ResponseBodyLimitAction)
	}
	// A body the size of a limit must fit in the process's buffer budget,
	// or no such body could ever be inspected (the engine reads one byte
	// past request_body_limit to see it crossed).
	if budget := v.c.WAFBufferLimit; w.Mode != WAFModeOff && budget > 0 {
		if w.RequestBodyLimit >= budget {
			v.errorf(p+".request_body_limit", "%s must be below waf_buffer_limit (%s), which bounds the bodies held for inspection at once", w.RequestBodyLimit, budget)
		}
		if w.InspectResponse && w.ResponseBodyLimit > budget {
			v.errorf(p+".response_body_limit", "%s must not exceed waf_buffer_limit (%s), which bounds the bodies held for inspection at once", w.ResponseBodyLimit, budget)
		}
	}
	for i, f := range w.RuleFiles {
		if f == "" {
			v.errorf(p+".rule_files["+strconv.Itoa(i)+"]", "empty file name")
		}
	}
	for i, g := range w.RampartRulesDisabled {
		if !slices.Contains(RampartRuleGroups, g) {
			v.errorf(p+".rampart_rules_disabled["+strconv.Itoa(i)+"]", "%q is not a group of Rampart's rules (%s)", g, strings.Join(RampartRuleGroups, ", "))
		}
	}
	for i := range w.Exclusions {
		v.exclusion(p+".exclusions["+strconv.Itoa(i)+"]", &w.Exclusions[i])
	}
}

// exclusion checks one rule exclusion at p. Excluding the CRS's own
// evaluation rules would switch the WAF off silently while it still looks
// configured, so they are refused.
func (v *validator) exclusion(p string, e *Exclusion) {
	if len(e.RuleIDs) == 0 {
		v.fieldf(p, "rule_ids", "rule_ids is required")
	}
	for i, id := range e.RuleIDs {
		ip := p + ".rule_ids[" + strconv.Itoa(i) + "]"
		switch {
		case id <= 0:
			v.errorf(ip, "rule id %d must be positive", id)
		case id == 949110 || id == 959100 || (id >= 980000 && id <= 980999):
			v.errorf(ip, "excluding rule %d would switch off the CRS blocking evaluation", id)
		case id == 200004 || id == 200005 || id == 200007:
			v.errorf(ip, "excluding rule %d would let arguments past max_arguments go uninspected; raise max_arguments instead", id)
		}
	}
	if e.PathPrefix != "" && !strings.HasPrefix(e.PathPrefix, "/") {
		v.errorf(p+".path_prefix", `%q must start with "/"`, e.PathPrefix)
	}
	for i, m := range e.Methods {
		if !validToken(m) {
			v.errorf(p+".methods["+strconv.Itoa(i)+"]", "invalid method %q", m)
		}
	}
	for i, t := range e.Targets {
		if why := badExclusionTarget(t); why != "" {
			v.errorf(p+".targets["+strconv.Itoa(i)+"]", "invalid target %q: %s", t, why)
		}
	}
}

// badExclusionTarget says what is wrong with an exclusion target, "" when
// nothing. A target is a variable (ARGS, REQUEST_HEADERS, ...) with an
// optional key after a colon (ARGS:q, ARGS:/^json\.\d+$/). The policy
// writes targets into SecLang as they are, inside a quoted action list
// ("ctl:ruleRemoveTargetById=ID;TARGET,...") or a quoted target list
// ("!A|!B"): a comma, a quote, a '|' or white space would end the target
// and let the rest be read as more actions (a key such as
// "a,ctl:ruleEngine=Off" would switch the engine off).
func badExclusionTarget(t string) string {
	name, key, hasKey := strings.Cut(t, ":")
	if name == "" {
		return "the variable name is missing (e.g. ARGS:q)"
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_') {
			return "the variable name holds a character other than letters and _"
		}
	}
	if hasKey && key == "" {
		return "the key after ':' is empty"
	}
	for _, c := range key {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(",\"'`|", c) {
			return "the key holds white space, a control or non-ASCII character, or one of , \" ' ` |"
		}
	}
	return ""
}

// rateLimits checks each rate limit policy.
func (v *validator) rateLimits() {
	for _, name := range sortedKeys(v.c.RateLimits) {
		p := "rate_limits." + name
		rl := v.c.RateLimits[name]
		if rl == nil {
			v.errorf(p, "is empty; rate is required")
			continue
		}
		v.rateLimit(p, rl)
	}
}

// rateLimit checks one policy at p.
func (v *validator) rateLimit(p string, rl *RateLimit) {
	if rl.Rate.N <= 0 || rl.Rate.Per <= 0 {
		v.fieldf(p, "rate", `rate is required (e.g. "100/s")`)
	} else if rl.Burst < 1 {
		v.errorf(p+".burst", "%d must be at least 1", rl.Burst)
	}
	if !validKey(rl.Key, []string{KeyClientIP, KeyRoute}, []string{KeyHeaderPrefix}) {
		v.errorf(p+".key", "invalid key %q (want client_ip, header:NAME or route)", rl.Key)
	}
	switch rl.Store {
	case StoreMemory:
	case StoreRedis:
		if v.c.Redis == nil {
			v.errorf(p+".store", `"redis" needs the top-level redis section`)
		}
	default:
		v.errorf(p+".store", "%q must be memory or redis", rl.Store)
	}
	if !oneOf(rl.OnStoreError, OnStoreErrorAllow, OnStoreErrorDeny) {
		v.errorf(p+".on_store_error", "%q must be allow or deny", rl.OnStoreError)
	}
}
