package waf

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// exclusionBaseID is the id of the first rule generated for an exclusion;
// exclusion i gets exclusionBaseID+i. Custom rules must stay clear of it.
const exclusionBaseID = 95000000

// maxRequestBodyLimit is the largest request_body_limit: Coraza refuses
// limits above 1 GiB, and the engine is given the policy's limit plus one.
const maxRequestBodyLimit = 1<<30 - 1

// engineSettings returns the recommended Coraza settings
// (@coraza.conf-recommended) adapted to the policy: the engine mode, body
// limits handled by the adapter (see Policy.Inspect), the argument limit
// and its rules, response inspection only when asked for, and no Coraza
// audit log (ours is audit.go). p has its defaults applied.
func engineSettings(p *config.WAFPolicy, bodyLimit, respLimit int64) string {
	engine := "On"
	if p.Mode == config.WAFModeDetect {
		engine = "DetectionOnly"
	}
	respBody := "Off"
	if p.InspectResponse {
		respBody = "On"
	}
	// The engine's limit is one more than the policy's: Coraza refuses a
	// body of exactly its limit, and the adapter decides what happens to
	// larger ones. The in-memory limit equals it so that Coraza never
	// spills a request body to a temporary file. The adapter gives the
	// engine at most respLimit bytes of a response.
	lim := strconv.FormatInt(bodyLimit+1, 10)
	return `SecRuleEngine ` + engine + `
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^(?:application(?:/soap\+|/)|text/)xml" "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "^application/[a-z0-9.-]+[+]json" "id:200006,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRequestBodyJsonDepthLimit 1024
SecRequestBodyLimit ` + lim + `
SecRequestBodyInMemoryLimit ` + lim + `
SecRequestBodyLimitAction Reject
SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,msg:'Failed to parse request body.',logdata:'%{reqbody_error_msg}',severity:2"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,status:400,msg:'Multipart request body failed strict validation.'"
` + argumentRules(p.MaxArguments, p.LimitStatus) + `SecResponseBodyAccess ` + respBody + `
SecResponseBodyMimeType text/plain text/html text/xml
SecResponseBodyLimit ` + strconv.FormatInt(respLimit+1, 10) + `
SecResponseBodyLimitAction ProcessPartial
SecAuditEngine Off
`
}

// argumentRules returns the argument limit and the rules that refuse a
// request over it. Coraza drops the query string's and the urlencoded or
// JSON body's arguments past SecArgumentsLimit and sets
// ARGUMENTS_LIMIT_REACHED; without a rule on it, a payload after max
// padding arguments would never be inspected. Rules 200004 and 200005 are
// those of ModSecurity's and Coraza's recommended configuration. Coraza
// keeps every field and file of a multipart body (no bypass, but no bound
// either), so 200007 refuses more than max of either, as ModSecurity does.
// 200005 does not repeat 200004's finding in detect mode.
func argumentRules(max, status int) string {
	n, st := strconv.Itoa(max), strconv.Itoa(status)
	return `SecArgumentsLimit ` + n + `
SecRule ARGUMENTS_LIMIT_REACHED "@eq 1" "id:200004,phase:1,t:none,log,deny,status:` + st + `,setvar:'tx.rampart_arguments_limit=1',msg:'Arguments limit exceeded: more than ` + n + ` arguments in the query string (max_arguments)',logdata:'max_arguments=` + n + `'"
SecRule ARGUMENTS_LIMIT_REACHED "@eq 1" "id:200005,phase:2,t:none,log,deny,status:` + st + `,msg:'Arguments limit exceeded: more than ` + n + ` arguments in the request body (max_arguments)',logdata:'max_arguments=` + n + `',chain"
SecRule &TX:rampart_arguments_limit "@eq 0" "t:none"
SecRule REQBODY_PROCESSOR "@streq MULTIPART" "id:200007,phase:2,t:none,log,deny,status:` + st + `,msg:'Arguments limit exceeded: more than ` + n + ` fields or files in the multipart body (max_arguments)',logdata:'max_arguments=` + n + `',chain"
SecRule &ARGS_POST|&FILES "@gt ` + n + `" "t:none"
`
}

// crsSetup returns the CRS setup for the policy: the CRS defaults of
// @crs-setup.conf.example, then the paranoia level and the anomaly
// threshold (the CRS initialization keeps values set before it).
func crsSetup(p *config.WAFPolicy) string {
	// The CRS setup gives default actions for phases 1 and 2 only; without
	// these, Coraza's defaults would keep the response and reporting rules
	// (such as 980170) from logging.
	return fmt.Sprintf(`Include @crs-setup.conf.example
SecDefaultAction "phase:3,log,auditlog,pass"
SecDefaultAction "phase:4,log,auditlog,pass"
SecDefaultAction "phase:5,log,auditlog,pass"
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=4"
`, p.ParanoiaLevel, p.AnomalyThreshold)
}

// crsRules loads the CRS rules from the embedded file system.
const crsRules = "Include @owasp_crs/*.conf\n"

// protectedRule reports whether excluding rule id would switch off the CRS
// blocking evaluation, so that nothing would ever be blocked, or let
// arguments past max_arguments through uninspected.
func protectedRule(id int) bool {
	return id == 949110 || id == 959100 || (id >= 980000 && id <= 980999) ||
		id == 200004 || id == 200005 || id == 200007
}

// exclusionRule compiles exclusion i to SecLang. An exclusion without a
// path or method applies to every request and becomes a configuration-time
// directive (SecRuleRemoveById, SecRuleUpdateTargetById), which costs
// nothing per request; it must follow the rules it changes (late is true).
// Otherwise it is a phase:1 rule with ctl actions that runs before the CRS
// (late is false).
func exclusionRule(i int, e *config.Exclusion) (seclang string, late bool) {
	var b strings.Builder
	if e.PathPrefix == "" && len(e.Methods) == 0 {
		for _, id := range e.RuleIDs {
			if len(e.Targets) == 0 {
				fmt.Fprintf(&b, "SecRuleRemoveById %d\n", id)
				continue
			}
			fmt.Fprintf(&b, "SecRuleUpdateTargetById %d \"", id)
			for j, t := range e.Targets {
				if j > 0 {
					b.WriteByte('|')
				}
				b.WriteString("!" + t)
			}
			b.WriteString("\"\n")
		}
		return b.String(), true
	}

	var ctl strings.Builder
	for _, id := range e.RuleIDs {
		if len(e.Targets) == 0 {
			fmt.Fprintf(&ctl, ",ctl:ruleRemoveById=%d", id)
			continue
		}
		for _, t := range e.Targets {
			fmt.Fprintf(&ctl, ",ctl:ruleRemoveTargetById=%d;%s", id, t)
		}
	}
	id := exclusionBaseID + i
	var conds []string
	if e.PathPrefix != "" {
		conds = append(conds, `REQUEST_FILENAME "@beginsWith `+seclangQuote(e.PathPrefix)+`"`)
	}
	if len(e.Methods) > 0 {
		alt := make([]string, len(e.Methods))
		for j, m := range e.Methods {
			alt[j] = regexp.QuoteMeta(strings.ToUpper(m))
		}
		conds = append(conds, `REQUEST_METHOD "@rx ^(?:`+seclangQuote(strings.Join(alt, "|"))+`)$"`)
	}
	for j, c := range conds {
		if j == 0 {
			fmt.Fprintf(&b, "SecRule %s \"id:%d,phase:1,pass,nolog,t:none", c, id)
		} else {
			fmt.Fprintf(&b, "SecRule %s \"t:none", c)
		}
		if j < len(conds)-1 {
			b.WriteString(",chain\"\n")
		} else {
			b.WriteString(ctl.String() + "\"\n")
		}
	}
	return b.String(), false
}

// seclangQuote escapes s for use inside a double-quoted SecLang argument.
func seclangQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// directive is one SecLang directive of the policy's own rules, with where
// it starts, so that an error can name the line.
type directive struct {
	text string // as the Coraza parser joins it: trimmed lines, continuations removed
	src  string // "rules" or a rule file's name
	line int    // 1-based line of the directive's first line in src
}

// splitDirectives splits SecLang into directives the way Coraza's parser
// does: blank lines and comments skipped, lines ending in a backslash
// continued, backtick blocks kept together.
func splitDirectives(src, text string) []directive {
	var (
		out     []directive
		buf     strings.Builder
		start   int
		inTicks bool
	)
	for n, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		if buf.Len() == 0 {
			start = n + 1
		}
		switch {
		case !inTicks && line[len(line)-1] == '`':
			inTicks = true
		case inTicks && line[0] == '`':
			inTicks = false
		}
		if inTicks {
			buf.WriteString(line + "\n")
			continue
		}
		if strings.HasSuffix(line, `\`) {
			buf.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		buf.WriteString(line)
		out = append(out, directive{text: buf.String(), src: src, line: start})
		buf.Reset()
	}
	if buf.Len() > 0 {
		out = append(out, directive{text: buf.String(), src: src, line: start})
	}
	return out
}
