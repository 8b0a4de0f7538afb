package waf

import (
	"slices"
	"strconv"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// Rampart's own rules (docs/waf-rules.md) have ids from rampartBaseID to
// rampartLastID: no CRS rule (1 to 999999), no exclusion rule (95000000
// and up) and no adapter note (951000xx) is in that range.
const (
	rampartBaseID = 9500000
	rampartLastID = 9500999
)

// rampartRules returns the SecLang of Rampart's own rules for the policy,
// or "" when rampart_rules is off. They load after the CRS setup and
// before the CRS rules: the expansion pass (9500000) must run before the
// CRS rules of phase 2 read ARGS, and the detection rules before the CRS
// blocking evaluation (949110) adds up the score. Every detection rule is
// of phase 2, after the CRS initialization (phase 1) has set the scores
// to zero.
func rampartRules(p *config.WAFPolicy) string {
	if p.RampartRules != nil && !*p.RampartRules {
		return ""
	}
	on := func(g string) bool { return !slices.Contains(p.RampartRulesDisabled, g) }
	var b strings.Builder
	var expand []string
	for _, g := range [...]string{"decode", "headers", "path", "uploads", "graphql"} {
		if on(g) {
			expand = append(expand, g)
		}
	}
	if len(expand) > 0 {
		b.WriteString(`SecAction "id:9500000,phase:2,pass,nolog,t:none,rampart_expand:` + strings.Join(expand, "/") + `"
SecRule TX:rampart_expand_over "@eq 1" "id:9500001,phase:2,block,t:none,msg:'Rampart: too many values to decode for inspection',tag:'rampart',tag:'rampart/decode',severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
`)
	}
	for _, g := range ruleGroups {
		if on(g.name) {
			b.WriteString(g.rules)
		}
	}
	// The value patterns of every group on, in one rule (operator.go).
	var names []string
	for _, g := range valuePatterns {
		if on(g.group) {
			names = append(names, g.names...)
		}
	}
	if len(names) > 0 {
		b.WriteString(`SecRule ` + allTargets + ` "@rampart ` + strings.Join(names, "|") + `" "id:9500300,phase:2,block,capture,t:none,msg:'Rampart: %{tx.rampart_detect}',` + logMatch +
			`,tag:'rampart',tag:'rampart/patterns',tag:'paranoia-level/1',` + scoreCritical + "\"\n")
	}
	return b.String()
}

// valuePatterns are the detectors of rule 9500300 by group; its message
// names the one that matched (xxe-entity, ssti-expr, cmdi, ...).
var valuePatterns = []struct {
	group string
	names []string
}{
	{"xxe", []string{"xxe-entity", "xxe-subset", "xxe-xinclude"}},
	{"ssti", []string{"ssti-expr", "ssti-directive"}},
	{"nosql", []string{"nosql-value"}},
	{"ldap", []string{"ldap"}},
	{"cmdi", []string{"cmdi", "cmdi-glued"}},
	{"sqli", []string{"sqli-quote", "sqli-start", "sqli-comment", "sqli-bool", "sqli-letters", "sqli-sys"}},
	{"redirect", []string{"redirect"}},
	{"traversal", []string{"traversal-target", "traversal-dots"}},
}

// ruleGroup is a group of detection rules that can be switched off.
type ruleGroup struct {
	name  string
	rules string
}

// Targets of the detection rules: every argument (the expanded values of
// ARGS_PATH included), argument name, cookie and XML value.
const (
	allTargets = `ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_COOKIES_NAMES|XML:/*|XML://@*`
	// scoreCritical adds a critical finding to the CRS inbound score.
	scoreCritical = `severity:'CRITICAL',setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'`
	logMatch      = `logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}'`
)

func detect(id, group, target, op, msg string) string {
	op = strings.ReplaceAll(op, `"`, `\"`)
	lm := logMatch
	if !strings.HasPrefix(op, "@rampart ") && !strings.HasPrefix(op, "@rx ") {
		// An operator that captures nothing (libinjection) would log
		// whatever an earlier rule left in TX.0.
		lm = `logdata:'Matched Data: found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}'`
	}
	return `SecRule ` + target + ` "` + op + `" "id:` + id + `,phase:2,block,capture,t:none,msg:'Rampart: ` + msg + `',` + lm +
		`,tag:'rampart',tag:'rampart/` + group + `',tag:'paranoia-level/1',` + scoreCritical + "\"\n"
}

var ruleGroups = []ruleGroup{
	{"libinjection", strings.Replace(detect("9500100", "libinjection", "ARGS_PATH", "@detectSQLi", "SQL injection in a decoded value (libinjection)"), "tag:'rampart',", "tag:'rampart',tag:'attack-sqli',", 1) +
		strings.Replace(detect("9500101", "libinjection", "ARGS_PATH", "@detectXSS", "XSS in a decoded value (libinjection)"), "tag:'rampart',", "tag:'rampart',tag:'attack-xss',", 1)},
	{"xxe", xxeDTDRule},
	{"nosql", nosqlNameRule},
}

// The value patterns of rule 9500300 (operator.go), each with its
// prefilter: the bytes or substrings without which it cannot match.
var (
	// XML external entities, entity declarations in a DOCTYPE's internal
	// subset (entity expansion), and XInclude.
	_ = pattern("xxe-entity", `<!ENTITY\s+(?:%\s*)?[^\s>]+\s+(?:SYSTEM|PUBLIC)\b`, need{subs: []string{"<!ENTITY"}})
	_ = pattern("xxe-subset", `<!DOCTYPE[^>\[]*\[[^\]]*<!ENTITY`, need{subs: []string{"<!DOCTYPE"}})
	_ = pattern("xxe-xinclude", `(?i)www\.w3\.org/2001/XInclude|<xi:include\b`, need{foldSubs: []string{"xinclude", "xi:include"}})
)

// xxeDTDRule (9500202) finds a DOCTYPE with an external DTD that is not
// the W3C's (XHTML's own DOCTYPE is allowed). The markup scan (markup.go)
// shows it the raw body's declarations as ARGS_PATH.
var xxeDTDRule = `SecRule ARGS|XML:/*|XML://@* "@rx <!DOCTYPE\s+[^\s>\[]+\s+(?:SYSTEM\s*|PUBLIC\s*(?:\"[^\"]*\"|'[^']*')\s*)(?:\"[^\"]*\"|'[^']*')" "id:9500202,phase:2,block,capture,t:none,msg:'Rampart: XML document with an external DTD',` + logMatch + `,tag:'rampart',tag:'rampart/xxe',tag:'paranoia-level/1',severity:'CRITICAL',chain"
SecRule TX:0 "!@rx (?i)[\"']https?://www\.w3\.org/" "t:none,setvar:'tx.inbound_anomaly_score_pl1=+%{tx.critical_anomaly_score}'"
`

// ssti patterns find template expressions that compute (arithmetic on
// literals), call, or reach for objects no template needs (dunder
// attributes, class loaders, runtimes). A plain placeholder ({{name}},
// ${HOME}, {{ user.name }}) does not match.
var (
	_ = pattern("ssti-expr", `(?:\{\{|\{%|\$\{|#\{|\*\{|@\{|~\{|<%=?|\[\[|@\()[^}%\]]{0,200}?(?:\d\s*[-+*/%]\s*['"]?\d|['"]\w*['"]\s*[*+]\s*\d|__\w+__|\b(?:class|mro|subclasses|globals|builtins|getClass|forName|getRuntime|Runtime|ProcessBuilder|exec|popen|system|eval|import|require|constructor|lipsum|cycler|joiner|namespace|self|config|request|application|dump|range|getattr|attr)\b\s*[.(\[|]|\w\s*\(|\|\s*\w+\s*\()`, need{anyOf: "{[(<@"})
	_ = pattern("ssti-directive", `<#assign\b|\?new\s*\(|#set\s*\(\s*\$|\$class\.|T\s*\(\s*java\.|\{\{\s*['"]?\s*\.\s*constructor|\bfreemarker\.template\.`, need{anyOf: "<?#${", subs: []string{"java.", "freemarker."}})
)

// nosqlNameRule (9500400) finds MongoDB query operators in argument names
// (user[$ne]=x, {"user": {"$ne": x}}); the nosql-value pattern finds them
// in values, and the server-side JavaScript of $where.
var nosqlNameRule = detect("9500400", "nosql", "ARGS_NAMES",
	pattern("nosql-name", `(?:^|[.\[])\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|or|and|not|nor|expr|function|accumulator|elemMatch|type|mod|all|size|jsonSchema|text)\]?$`, need{anyOf: "$"}),
	"NoSQL operator in an argument name")

var (
	_ = pattern("nosql-value", `\$(?:where|ne|eq|gt|gte|lt|lte|regex|in|nin|or|and|nor|not|expr|function|exists|elemMatch|comment)\b\s*['"]?\s*:|\bthis\.\w+(?:\.\w+)*\s*(?:\.\s*match\s*\(|[=!]=)|\bdb\.[\w$]+\.(?:insert|find|update|remove|drop|mapReduce|aggregate|delete)\w*\s*\(|(?:\|\||&&)\s*['"]?\d+['"]?\s*===?\s*['"]?\d+|\b(?:sleep|emit)\s*\(\s*\d+\s*\)\s*(?:;|$|\|\|)|;\s*return\s+(?:true|false|\d|['"])`, need{anyOf: "$|&;(", subs: []string{"this.", "db."}})
)

// The ldap pattern finds a value that closes an LDAP filter and opens another,
// or an OR/AND/NOT filter of attribute assertions.
var (
	_ = pattern("ldap", `(?:\)\s*\(\s*[|&!]?\s*\(?\s*[a-zA-Z][\w.;-]*\s*[~<>]?=|\(\s*[|&!]\s*\(\s*[a-zA-Z][\w.;-]*\s*[~<>]?=|\*\s*\)\s*\(\s*[|&!(]|\*\s*\)\s*\)\s*(?:\x00|\(|$))`, need{anyOf: "()*"})
)

// The cmdi pattern finds a shell command after a command separator, or in a
// command substitution, where the CRS (at paranoia level 1) needs longer
// command lines: ;id, |id, `id`, $(id), with the separator at the start of
// the value or after a quote.
var (
	_ = pattern("cmdi", `(?:^|['"\s])(?:;|\|\|?|&&?|\n|\r)\s*(?:\x60|\$\()?\s*(?:/[\w/]*?/)?(?:id|whoami|uname|ls|cat|sleep|ping|nc|ncat|netcat|wget|curl|bash|sh|zsh|python\d?|perl|ruby|php|echo|pwd|ifconfig|ip|env|printenv|ps|kill|rm|nslookup|dig|telnet|base64|chmod|sudo|su|passwd|hostname|type|dir|systeminfo|sysinfo|ipconfig|netstat|netsh|tasklist|wmic|certutil|bitsadmin|reg\s+(?:add|query|save|delete|export)|net|powershell|cmd)(?:\s|$|[;|&\x60)<>])|\$\(\s*(?:id|whoami|uname|ls|cat|sleep|curl|wget|echo|ping)\b[^)]*\)|\x60\s*(?:id|whoami|uname|ls|cat|sleep|curl|wget|echo|ping)\b[^\x60]*\x60`, need{anyOf: ";|&\n\r`$"})
)

// The cmdi-glued pattern finds a separator glued to the text before it
// (x;whoami, a);id, x&&uname -a) followed by a command that only reports
// on the system: what a probe for command injection sends first. A
// command that is also a common word in a list of names (id, pwd,
// hostname: name;id, user;pwd;email) needs a separator after it that ends
// the value (a;id;) or a closing parenthesis right before (a);id). The
// commands are lower case, as a shell needs them.
var (
	_ = pattern("cmdi-glued", `[\w)\]'"](?:;|\|\|?|&&?)\s*(?:/[\w/]*?/)?(?:whoami|uname|ifconfig|ipconfig|sysinfo|systeminfo|netstat)(?:\s+-[a-z]+)?\s*(?:[;|&\x60#\n]|$)`+
		`|[\w\]'"](?:;|\|\|?|&&?)\s*(?:/[\w/]*?/)?(?:id|pwd|hostname)\s*[;|&\x60#\n]\s*$|\)(?:;|\|\|?|&&?)(?:/[\w/]*?/)?(?:id|pwd|hostname)\b`, need{anyOf: ";|&"})
)

// The sqli patterns find what libinjection and the CRS at paranoia level 1 let
// through: a quote that closes the string the value was put in, followed
// by a boolean comparison (' or 'a'='a, x' or name()='x': SQL and XPath;
// a quoted string inside a filter expression, status = "Open" AND x = 1,
// does not close anything), and a value that starts
// (after the literal it closes) with a tautology or an ORDER BY column
// probe. Prose that mentions WHERE 1=1 does not start with it.
var (
	_ = pattern("sqli-quote", `(?i)^[\w\s.@-]*['"\x60]\s*\)*\s*(?:or|and|xor|\|\||&&)\s+[\w'"().\s]{1,40}?(?:=|<>|!=|<=|>=|<|>|\blike\b|\bbetween\b|\bis\s+(?:not\s+)?null\b)`, need{anyOf: "'\"\x60"})
	_ = pattern("sqli-start", `(?i)^[\s'"\x60()-]*[\w.-]*['"\x60)]*\s*(?:(?:or|and|xor|having|where|\|\||&&)\s+[\s'"(]*['"]?\d+['"]?\s*(?:=|<>|!=|<|>)\s*['"]?\d+|(?:order|group)\s+by\s+\d+\s*(?:--|#|/\*|;|,|\)|$))`,
		// Both branches need a digit; the first a comparison, the second
		// "by" in any case (prose holds a b, and most JSON values both).
		need{anyOf: "=<>", foldSubs: []string{"by"}, digit: true})
)

// More SQL probes the CRS at paranoia level 1 and libinjection let
// through, each anchored at the start of the value, where an injection
// begins and prose rarely does:
//   - sqli-comment: a word, the quote that closes the string it was put
//     in, and a comment that drops the rest of the statement (admin' #,
//     admin'--: the login bypass);
//   - sqli-bool: a value that is only a boolean operator and a constant
//     before a comment or a ; (or true--, AND 1#, && 0;): the pair a blind
//     injection sends. Without the comment (AND 1) it is left alone: its
//     prefilter would then be "or" or "and", which most values hold, and
//     every pattern of rule 9500300 would run on them (12% more CPU on
//     the WAF benchmark's POST);
//   - sqli-letters: OR or AND and a comparison of one-letter names (' OR
//     x=x--, " or a=b#), the tautology without digits, ending the value
//     or before a comment;
//   - sqli-sys: a SELECT of the server's own variables, users or system
//     catalogs (select @@version, select current_user, select * from
//     pg_shadow): no application asks its users for those.
var (
	_ = pattern("sqli-comment", `^[\w.@-]+['"]\s*\)*\s*(?:#|--|/\*)`, need{anyOf: "'\""})
	_ = pattern("sqli-bool", `(?i)^[\s'"()]*(?:and|or|xor|&&|\|\|)\s+(?:true|false|\d+|null)\s*(?:--|#|/\*|;)`,
		need{anyOf: "#;", subs: []string{"--", "/*"}})
	_ = pattern("sqli-letters", `(?i)^[\w\s'"()]*?['"\s)](?:or|and)\s+[a-z]\s*=\s*[a-z]\b\s*(?:--|#|/\*|;|$)`, need{anyOf: "="})
	_ = pattern("sqli-sys", `(?i)^\s*select\s+(?:@@\w+|current_user\b|session_user\b|system_user\b|user\s*\(\s*\)|version\s*\(\s*\)|database\s*\(\s*\)|\*\s+from\s+(?:pg_\w+|sys\w*|master\.\.|information_schema\.|mysql\.|dba_\w+|all_\w+))`,
		need{foldSubs: []string{"select"}})
)

// The traversal patterns find what path traversal scanners send with the
// separators or the dots in encodings no decoder undoes to / or . (invalid
// or nonstandard escapes: %c0%9v, %%32%%66, %uEFC8, 0x2f, five-byte
// overlong forms), which the CRS's traversal rules, looking for ../ and
// its standard encodings, do not read as one: a well-known system file
// whose path components are joined by any such separator
// (etc%c0%9vpasswd, windows%bg%qfwin.ini, boot.ini), and two dot-dot
// segments in a row whose separator is an escape (..%c1%8s..%c1%8s). A
// plain / or \ is left to the CRS (930100, 930110, 930120): a second
// finding of the same thing would count as corroboration (shapes.go).
var (
	_ = pattern("traversal-target", `(?i)(?:^|[^a-z0-9]|%[0-9a-z]{2})etc`+travSep+`(?:passwd|shadow|issue|hosts|group|motd|master\.passwd)\b|system32`+travSep+`drivers`+travSep+`etc\b|\bwin(?:dows|nt)`+travSep+`(?:win\.ini|system\.ini|system32)\b|(?:^|[^a-z0-9])boot\.ini\b`,
		need{anyOf: "%?", foldSubs: []string{"0x", "boot.ini"}})
	_ = pattern("traversal-dots", `(?i)(?:`+travDots+travEscSep+`){2}|`+travDots+travEscSep+`(?:etc|windows|winnt|boot\.ini|win\.ini|system32|inetpub)\b`,
		need{anyOf: "%", foldSubs: []string{"0x"}})
)

// Pieces of the traversal patterns: a separator (an escape run of at
// most 14 bytes, 0x2f or 0x5c, a ?), dots (.. .? ?. ?? and their %2e and
// 0x2e forms), and a separator that is an escape. Before etc, the end of
// an escape (%qf) is a boundary as a non-letter is.
const (
	travSep    = `(?:%[0-9a-z%]{1,14}?|0x(?:2f|5c)|\?)`
	travDots   = `(?:\.\.|\.\?|\?\.|\?\?|%2e%2e|\.%2e|%2e\.|0x2e0x2e)`
	travEscSep = `(?:%0[01])?(?:%[0-9a-z%]{1,14}?|0x(?:2f|5c))`
)

// The redirect pattern finds values that send a redirect to another host in a
// form a same-site check misses: a protocol-relative reference
// (//host, /\host, /%09/host), a scheme after a slash (/https://host),
// and credentials before the host (https://trusted@evil).
var (
	_ = pattern("redirect", `(?i)^\s*(?:[/\\]\s*){2,}[\w.-]+\.[a-z]{2,}|^\s*[/\\]+\s*(?:https?|ftp|javascript|data)\s*:|^\s*(?:[a-z][a-z0-9+.-]*:)?(?:[/\\]\s*){2,}[^/\\?#\s@]+@[\w-]+\.`, need{anyOf: "/\\"})
)

// apiRules hand a body of a media type with a +json or +xml suffix
// (application/merge-patch+json, application/rss+xml) or a browser's CSP
// violation report (application/csp-report, JSON) to the JSON or XML body
// processor, and a text/plain or line-delimited JSON body to
// rampart_text (textbody.go); rule 9500013 (apigroup.go, loaded with the CRS by
// crsWithUnscore) takes back the score CRS 911100 and 920420 give the
// methods and media types the group allows.
//
// They load before the CRS setup (rampartEarlyRules): rules that read the
// request between the setup's SecActions and the CRS initialization would
// keep the engine from replacing that run of rules, which reads and writes
// only TX, by its result (the Coraza patch, corazapatch/README.md).
const apiRules = `SecRule REQUEST_HEADERS:Content-Type "@rx ^application/(?:[a-z0-9.-]+\+json|csp-report)\s*(?:;|$)" "id:9500011,phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx ^application/[a-z0-9.-]+\+xml\s*(?:;|$)" "id:9500012,phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:text/plain|application/(?:x-)?(?:ndjson|jsonl|jsonlines))\s*(?:;|$)" "id:9500014,phase:1,pass,nolog,t:none,t:lowercase,ctl:requestBodyProcessor=RAMPART_TEXT"
`

// rampartEarlyRules returns the rules of Rampart's that load before the CRS
// setup: apiRules, when the api group is on.
func rampartEarlyRules(p *config.WAFPolicy) string {
	if p.RampartRules != nil && !*p.RampartRules || slices.Contains(p.RampartRulesDisabled, "api") {
		return ""
	}
	return apiRules
}

// crsWithUnscore returns the directives that load the CRS rules with the
// rules that take scores back between the CRS detection rules and the
// blocking evaluation (REQUEST-949): 9500013 of the api group (phase 1,
// after 911100 and 920420, before the early blocking of 949111) and
// 9500900 of the prose group. It returns crsRules when both are off.
func crsWithUnscore(p *config.WAFPolicy, exemptSet uint64) string {
	if p.RampartRules != nil && !*p.RampartRules {
		return crsRules
	}
	var mid strings.Builder
	if !slices.Contains(p.RampartRulesDisabled, "api") {
		mid.WriteString(`SecAction "id:9500013,phase:1,pass,nolog,t:none,rampart_api"` + "\n")
	}
	if !slices.Contains(p.RampartRulesDisabled, "prose") {
		gq := ""
		if !slices.Contains(p.RampartRulesDisabled, "graphql") {
			gq = "/graphql"
		}
		mid.WriteString(`SecAction "id:9500900,phase:2,pass,nolog,t:none,rampart_unscore:set=` + strconv.FormatUint(exemptSet, 10) + gq + `"` + "\n")
	}
	if mid.Len() == 0 {
		return crsRules
	}
	return `Include @owasp_crs/REQUEST-9[0-3]*.conf
Include @owasp_crs/REQUEST-94[0-4]*.conf
` + mid.String() + `Include @owasp_crs/REQUEST-949*.conf
Include @owasp_crs/REQUEST-999*.conf
Include @owasp_crs/RESPONSE-*.conf
`
}
