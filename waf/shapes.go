package waf

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/corazawaf/coraza/v3/types/variables"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// The CRS at paranoia level 1 mistakes some ordinary values for attacks:
// prose that mentions SQL words, shell commands or /etc paths, filter
// expressions (JQL, OData), a GraphQL document, binary data in base64. The
// prose group recognizes these shapes by their structure. Rule 9500900,
// an action run after the CRS detection rules and before the CRS blocking
// evaluation (REQUEST-949), takes back the score of each CRS rule of the
// shape's attack tags whose every match is on a value of that shape: the
// match stays in the audit event, scored nothing. Nothing is computed for a
// request no such rule matched. A decoded form of a value is a value of
// its own: a payload in it is not prose, and keeps its score.
//
//   - prose: at least 5 words, three in four of them plain words; no
//     brackets, braces, backticks, $, =, ;, |, \, comment sequences, quotes
//     other than apostrophes inside or after a word, or SQL statement
//     skeletons (UNION SELECT, SELECT ... FROM, INSERT INTO, ...): the SQL,
//     command and file rules are switched off. A payload needs what prose
//     lacks, or stops being one inside a sentence;
//   - a filter expression (filterExpr): field op value clauses joined by
//     AND/OR, with calls and ORDER BY: the SQL rules. A clause must start
//     with a field name, so a tautology (1=1, 'a'='a') is not one;
//   - a GraphQL document that parses (query in a GET, json.query): the SQL,
//     command, file and XSS rules; its string arguments are inspected one
//     by one (the graphql group), so the group needs graphql on;
//   - binary data: a data: URL of a non-text type, or a long base64 value,
//     that decodes to bytes that are not text: every attack rule.
//   - injection context (injctx.go): SQL that no dialect parses in any
//     context the value could be put in (the SQL rules), and a command
//     line that only pipes into text filters reading standard input (the
//     command rules).

// Shapes of a value.
const (
	shapeNone = iota
	shapeProse
	shapeFilter
	// shapeFilterInert is a filter expression whose strings hold no shell
	// metacharacter (shellInert): nothing in it reaches a shell.
	shapeFilterInert
	shapeGraphQL
	shapeBlob
	// shapeMixed is text with code in it (mixedText): its rules' score is
	// taken back only when nothing else in the request corroborates them.
	shapeMixed
	// shapeQuantifier is a value whose brace groups with a comma hold
	// digits only (a regular expression's {2,} or {7,20}): the CRS's
	// brace expansion rule (932280) reads them as bash's {a,b}, which
	// needs words to make a command.
	shapeQuantifier
	// shapeSQLDead is a value that leaves no SQL statement it is put in
	// parseable (sqlDead, injctx.go): the SQL rules.
	shapeSQLDead
	// shapeShellFilter is a command line that pipes only into text
	// filters reading their standard input (shellFilterPipe): the
	// command rules.
	shapeShellFilter
	// shapeFormula is a spreadsheet formula that computes on cells and
	// literals only (spreadsheetFormula, formula.go): the SQL rules.
	shapeFormula
	// shapeXMLDoc is an XML document, as it is or in base64, that no
	// browser or HTML page runs anything of (inertXMLDoc, xmldoc.go): a
	// SAML message. The XSS rules.
	shapeXMLDoc
	// shapeMessage is several lines of text with commands on lines of
	// their own or fenced (messageText, message.go): the command rules,
	// only when nothing else in the request corroborates them (Evaluate).
	shapeMessage
	numShapes
)

// exemptRules are, per shape, the ids of the loaded CRS rules switched off
// for it, filled by the rule observer while the policy compiles. They are
// read only after Compile returns.
type exemptRules struct {
	byShape [numShapes][]int
}

// tagsByShape are the CRS tags of the rules each shape switches off.
var tagsByShape = [numShapes][]string{
	shapeProse:  {"attack-sqli", "attack-rce", "attack-lfi"},
	shapeFilter: {"attack-sqli"},
	// shapeFilterInert: a filter expression (field op value) reads as
	// shell words to the CRS's command rules (status!=done).
	shapeFilterInert: {"attack-sqli", "attack-rce"},
	shapeGraphQL:     {"attack-sqli", "attack-rce", "attack-lfi", "attack-xss"},
	shapeBlob:        {"attack-sqli", "attack-rce", "attack-lfi", "attack-xss", "attack-injection-php", "attack-injection-generic", "attack-ssrf"},
	// shapeMixed: only for a detection nothing corroborates (Evaluate).
	shapeMixed:       {"attack-sqli", "attack-rce", "attack-lfi"},
	shapeSQLDead:     {"attack-sqli"},
	shapeShellFilter: {"attack-rce"},
	shapeFormula:     {"attack-sqli"},
	shapeXMLDoc:      {"attack-xss"},
}

// ruleWindowsCommand is CRS 932140, whose pattern is the grammar of a
// cmd.exe FOR or IF command (if exist x, if not defined x, for %a in
// (set) do x): English does not write it, and such a command reads as
// prose otherwise (IF EXIST data.xls ECHO The file was found). Text
// shapes never take its score back.
const ruleWindowsCommand = 932140

// ruleBraceExpansion is CRS 932280 (bash brace expansion, {cat,/etc/passwd}),
// the one rule shapeQuantifier takes back.
const ruleBraceExpansion = 932280

// observe records a loaded rule's id under each shape whose tags it has.
// Only CRS rules (ids below 1000000) and Rampart's libinjection rules are
// switched off.
func (e *exemptRules) observe(id int, tags []string) {
	if id >= 1000000 && !containsStr(tags, "rampart/libinjection") {
		return
	}
	if id == ruleBraceExpansion {
		e.byShape[shapeQuantifier] = append(e.byShape[shapeQuantifier], id)
	}
	for s := range tagsByShape {
		if id == ruleWindowsCommand && (s == shapeProse || s == shapeMixed) {
			continue
		}
		for _, t := range tagsByShape[s] {
			if containsStr(tags, t) {
				e.byShape[s] = append(e.byShape[s], id)
				break
			}
		}
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// exemptSets hands a policy's exemptRules to its rampart_unscore action:
// the action's argument names the set by number while the policy compiles.
var (
	exemptSets   sync.Map // uint64 -> *exemptRules
	exemptSetSeq atomic.Uint64
)

// shapeOf returns the shape of an argument's value (k is its name).
func shapeOf(k, v string, graphql bool) int {
	switch {
	case len(v) < 16:
		return shapeNone
	case graphql && (k == "query" || strings.HasSuffix(k, ".query")) && looksGraphQL(v) && validGraphQL(v):
		return shapeGraphQL
	case isBlob(v):
		return shapeBlob
	case isProse(v):
		return shapeProse
	case k == "$expand" && isODataExpand(v, 0):
		return shapeFilter
	case isFilterExpr(v):
		if shellInert(v) {
			return shapeFilterInert
		}
		return shapeFilter
	case mixedText(v):
		return shapeMixed
	case numericBraces(v):
		return shapeQuantifier
	}
	return shapeNone
}

// baseShapes are the shapes shapeOf decides among (a value has at most
// one of them).
const baseShapes = 1<<shapeNone | 1<<shapeProse | 1<<shapeFilter | 1<<shapeFilterInert | 1<<shapeGraphQL |
	1<<shapeBlob | 1<<shapeMixed | 1<<shapeQuantifier

// shapeMemo is what one Evaluate learned of a value's shapes: known are
// the shapes decided, has those of them the value has.
type shapeMemo struct{ known, has uint16 }

// shapeCache holds, for one Evaluate, the shapes of the values rules
// matched, by argument name and value: a value that many rules matched
// is read once per shape, and a shape no matched rule can be exempted by
// is never computed (an XML document parse, a message's regular
// expression), so that a request crafted to match many rules costs no
// more than one read of each value per shape.
type shapeCache struct {
	m map[[2]string]*shapeMemo // made on first use
}

// shapes returns which of want the argument k's value v has: its shapeOf,
// the injection-context shapes (injctx.go), which a value of any other
// shape may have too, a spreadsheet formula (formula.go), which may be
// short, an XML document (xmldoc.go) and a message (message.go).
func (c *shapeCache) shapes(k, v string, graphql bool, want uint16) uint16 {
	if c.m == nil {
		c.m = make(map[[2]string]*shapeMemo)
	}
	key := [2]string{k, v}
	m := c.m[key]
	if m == nil {
		m = new(shapeMemo)
		c.m[key] = m
	}
	need := want &^ m.known
	if need == 0 {
		return m.has & want
	}
	if need&baseShapes != 0 {
		m.has |= 1 << shapeOf(k, v, graphql)
		m.known |= baseShapes
	}
	check := func(s int, f func(string) bool) {
		if need&(1<<s) != 0 {
			if f(v) {
				m.has |= 1 << s
			}
			m.known |= 1 << s
		}
	}
	check(shapeFormula, spreadsheetFormula)
	check(shapeXMLDoc, inertXMLDoc)
	check(shapeMessage, messageText)
	if len(v) >= 16 {
		check(shapeSQLDead, sqlDead)
		check(shapeShellFilter, shellFilterPipe)
	} else {
		m.known |= 1<<shapeSQLDead | 1<<shapeShellFilter // too short for either
	}
	return m.has & want
}

// validGraphQL reports whether v parses as a GraphQL executable document.
func validGraphQL(v string) bool {
	_, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: v}, 10000)
	return err == nil
}

// isBlob reports whether v is base64 of binary data, bare or in a data:
// URL of a type that is not text.
func isBlob(v string) bool {
	if rest, ok := strings.CutPrefix(v, "data:"); ok {
		mt, data, ok := strings.Cut(rest, ",")
		if !ok || !strings.HasSuffix(mt, ";base64") {
			return false
		}
		for _, text := range [...]string{"text/", "html", "xml", "svg", "javascript", "json", "ecmascript"} {
			if strings.Contains(strings.ToLower(mt), text) {
				return false
			}
		}
		v = data
	}
	if len(v) < 64 || !base64ish(v) {
		return false
	}
	_, text := b64text(v[:min(len(v), 512)&^3])
	return !text
}

// proseBytes are the bytes prose never holds (a single quote is handled
// apart: an apostrophe inside or after a word; a backslash is allowed, for
// Windows paths, but not in a traversal).
const proseBytes = "<>{}[]|`$;=\"*^"

// sqlSkeleton finds the statement skeletons that make SQL of prose.
var sqlSkeleton = regexp.MustCompile(`(?i)\bunion\s+(?:all\s+|distinct\s+)?select\b|\bselect\b[^.?!]{0,80}\bfrom\b|\binsert\s+into\b|\bdelete\s+from\b|\bupdate\s+\w+\s+set\b|\bdrop\s+(?:table|database|schema)\b|\b(?:sleep|benchmark|waitfor|pg_sleep)\b\s*\(|\bor\s+\d+\s*[<>]|\bexec(?:ute)?\s+(?:xp_|sp_)`)

// isProse reports whether v reads as natural-language text, Markdown
// code spans (`make test`) aside.
func isProse(v string) bool {
	v = codeSpansAsWords(v)
	if len(v) > 8192 || strings.ContainsAny(v, proseBytes) || strings.Contains(v, "--") ||
		strings.Contains(v, "/*") || strings.Contains(v, "&&") || strings.Contains(v, "#") ||
		strings.Contains(v, "../") || strings.Contains(v, "..\\") {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f || cmdVariable(v, i) {
			return false
		}
		if c == '\'' && (i == 0 || !isLetterByte(v[i-1])) {
			return false // a quote that opens, not an apostrophe
		}
	}
	for _, line := range strings.Split(v, "\n") {
		if f := strings.Fields(line); len(f) == 1 || len(f) == 2 {
			return false // a lone command on its own line
		}
	}
	words, n := 0, 0
	for _, f := range strings.Fields(v) {
		n++
		f = strings.Trim(f, ".,!?:()")
		if f != "" && plainWord(f) {
			words++
		}
	}
	return n >= 5 && words*4 >= n*3 && !sqlSkeleton.MatchString(v)
}

// codeSpansAsWords returns s with each Markdown code span (`make test`)
// replaced by the word "code", when s's backticks pair up; else s.
func codeSpansAsWords(s string) string {
	if n := strings.Count(s, "`"); n < 2 || n%2 != 0 {
		return s
	}
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 0 {
			b.WriteString(part)
		} else {
			b.WriteString(" code ")
		}
	}
	return b.String()
}

func isLetterByte(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80 }

// plainWord reports whether f is letters, with an apostrophe and a hyphen
// allowed inside or at the end (don't, O'Brien, users', well-known).
func plainWord(f string) bool {
	for i := 0; i < len(f); i++ {
		c := f[i]
		if !isLetterByte(c) && !((c == '\'' || c == '-') && i > 0) {
			return false
		}
	}
	return true
}

// odataOption reports whether an argument name is an OData system query
// option ($filter, $select, ...), which the CRS's NoSQL rule 942290 reads
// as a MongoDB operator.
func odataOption(name string) bool {
	switch name {
	case "$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$search",
		"$format", "$apply", "$compute", "$levels", "$skiptoken", "$deltatoken", "$inlinecount":
		return true
	}
	return false
}

func init() {
	plugins.RegisterAction("rampart_unscore", func() plugintypes.Action { return new(unscoreAction) })
}

// unscoreAction is rampart_unscore:set=N[/graphql], N naming the policy's
// exemptRules in exemptSets.
type unscoreAction struct {
	exempt *exemptRules
	// graphql: the graphql group inspects a document's strings one by one,
	// so a document that parses is a shape.
	graphql bool
	// shapeOfRule maps a rule id to the shapes that exempt it, built once
	// on first use (after the policy compiled: the rules load after the
	// action) by any of the transactions that run the action at once.
	once        sync.Once
	shapeOfRule map[int]uint16
}

func (a *unscoreAction) Init(_ plugintypes.RuleMetadata, data string) error {
	data, gq := strings.CutSuffix(data, "/graphql")
	a.graphql = gq
	n, ok := strings.CutPrefix(data, "set=")
	if !ok {
		return errors.New("rampart_unscore: want set=N")
	}
	id, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return err
	}
	if ex, ok := exemptSets.Load(id); ok {
		a.exempt = ex.(*exemptRules)
	}
	return nil
}

func (a *unscoreAction) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

// scoreVars are the TX variables of each severity's score, by
// types.RuleSeverity (emergency 0 to debug 7).
var scoreVars = [...]string{"critical_anomaly_score", "critical_anomaly_score", "critical_anomaly_score",
	"critical_anomaly_score", "error_anomaly_score", "warning_anomaly_score", "notice_anomaly_score", ""}

func (a *unscoreAction) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	mt, ok := tx.(interface{ MatchedRules() []types.MatchedRule })
	if !ok || a.exempt == nil {
		return
	}
	a.once.Do(func() {
		m := make(map[int]uint16)
		for s, ids := range a.exempt.byShape {
			for _, id := range ids {
				m[id] |= 1 << s
			}
		}
		a.shapeOfRule = m
	})
	tv := tx.Variables().TX()
	matched := mt.MatchedRules()
	var cache shapeCache
	// left are the detections the shapes did not take back (a lone one
	// may be taken back on mixed text, below); libinjection twins (CRS
	// 942100 and Rampart's 9500100, 941100 and 9500101: one detector,
	// the second on the decoded forms) count as one kind.
	var left [8]int
	n, kinds := 0, 0
	var kind [2]bool // sqli, xss libinjection seen
	for i, mr := range matched {
		r := mr.Rule()
		if !detection(r) {
			continue
		}
		shapes := a.shapeOfRule[r.ID()] &^ (1 << shapeMixed)
		if shapes != 0 && a.allExempted(tx.Variables(), mr, shapes, &cache) {
			takeBack(tv, r, len(mr.MatchedDatas()))
			continue
		}
		if n < len(left) {
			left[n] = i
		}
		n++
		switch twin := libinjectionKind(r.ID()); {
		case twin < 0:
			kinds++
		case !kind[twin]:
			kind[twin] = true
			kinds++
		}
	}
	if n == 0 || n > len(left) {
		return
	}
	// Messages: command findings alone, each on messages only, are taken
	// back; anything else the request set off corroborates them.
	if a.messageOnly(tx.Variables(), matched, left[:n], &cache) {
		for _, i := range left[:n] {
			takeBack(tv, matched[i].Rule(), len(matched[i].MatchedDatas()))
		}
		return
	}
	// Corroboration: text with code in it (a SQL statement quoted in a
	// sentence, a path or a variable in a support ticket) that nothing
	// breaks out of is refused for two detections, not for one. A
	// payload breaks out of its context (a quote, a comment, a command
	// separator, markup) or sets off more than one rule.
	if kinds != 1 {
		return
	}
	for _, i := range left[:n] {
		shapes := a.shapeOfRule[matched[i].Rule().ID()]
		if shapes&(1<<shapeMixed) == 0 || !a.allExempted(tx.Variables(), matched[i], shapes, &cache) {
			return
		}
	}
	for _, i := range left[:n] {
		takeBack(tv, matched[i].Rule(), len(matched[i].MatchedDatas()))
	}
}

// messageOnly reports whether each of the detections left is a command
// finding (commandDetection) whose every match is on a message.
func (a *unscoreAction) messageOnly(vars plugintypes.TransactionVariables, matched []types.MatchedRule, left []int, cache *shapeCache) bool {
	for _, i := range left {
		mr := matched[i]
		mds := mr.MatchedDatas()
		msgs := make([]string, len(mds))
		for j, md := range mds {
			msgs[j] = md.Message()
		}
		if !commandDetection(mr.Rule().ID(), mr.Rule().Tags(), msgs) || !a.allExempted(vars, mr, 1<<shapeMessage, cache) {
			return false
		}
	}
	return true
}

// libinjectionKind returns 0 for the libinjection SQLi rules (CRS 942100,
// Rampart's 9500100), 1 for the XSS ones (941100, 9500101), -1 otherwise.
func libinjectionKind(id int) int {
	switch id {
	case 942100, 9500100:
		return 0
	case 941100, 9500101:
		return 1
	}
	return -1
}

// allExempted reports whether every value rule match mr matched has one of
// shapes.
func (a *unscoreAction) allExempted(vars plugintypes.TransactionVariables, mr types.MatchedRule, shapes uint16, cache *shapeCache) bool {
	mds := mr.MatchedDatas()
	if len(mds) == 0 {
		return false
	}
	for _, md := range mds {
		if !a.exempted(vars, md, shapes, cache) {
			return false
		}
	}
	return true
}

// detection reports whether rule r finds an attack: a CRS rule with a
// severity tagged attack-* (protocol checks aside), or one of Rampart's
// detection rules (tagged rampart; its bookkeeping actions have no tag).
func detection(r types.RuleMetadata) bool {
	if r.Severity() == types.RuleSeverityUnset {
		return false // bookkeeping (922140 counts multipart headers)
	}
	rampart := r.ID() >= rampartBaseID && r.ID() <= rampartLastID
	for _, t := range r.Tags() {
		if rampart && t == "rampart" || !rampart && strings.HasPrefix(t, "attack-") && t != "attack-protocol" {
			return true
		}
	}
	return false
}

// takeBack subtracts n times the score of rule r's severity from the
// inbound anomaly score of its paranoia level (never below zero).
func takeBack(tv collection.Map, r types.RuleMetadata, n int) {
	sev := int(r.Severity())
	if sev < 0 || sev >= len(scoreVars) || scoreVars[sev] == "" {
		return
	}
	key := "inbound_anomaly_score_pl" + strconv.Itoa(paranoiaOf(r.Tags()))
	per, _ := strconv.Atoi(first(tv.Get(scoreVars[sev])))
	cur, _ := strconv.Atoi(first(tv.Get(key)))
	tv.Set(key, []string{strconv.Itoa(max(0, cur-n*per))})
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// paranoiaOf returns the paranoia level of a CRS rule's tags (1 when
// none says).
func paranoiaOf(tags []string) int {
	for _, t := range tags {
		if l, ok := strings.CutPrefix(t, "paranoia-level/"); ok && len(l) == 1 && l[0] >= '1' && l[0] <= '4' {
			return int(l[0] - '0')
		}
	}
	return 1
}

// exempted reports whether the value a rule matched has one of shapes. A
// match holds the value as the rule's transformations left it, so the
// shape is read from the request's own values of that name: every value
// of the argument (its decoded forms included) must have the shape, or
// carry nothing (interesting is false). XML text is one name, "/*".
func (a *unscoreAction) exempted(vars plugintypes.TransactionVariables, md types.MatchData, shapes uint16, cache *shapeCache) bool {
	var vals [][]string
	switch md.Variable() {
	case variables.Args, variables.ArgsGet, variables.ArgsPost, variables.ArgsPath:
		k := md.Key()
		vals = [][]string{vars.ArgsGet().Get(k), vars.ArgsPost().Get(k), vars.ArgsPath().Get(k)}
	case variables.XML, variables.RequestXML:
		if md.Key() != "/*" {
			return false
		}
		vals = [][]string{vars.XML().Get("/*")}
	case variables.ArgsNames:
		return shapes&(1<<shapeFilter) != 0 && odataOption(md.Value())
	default:
		return false
	}
	seen := false
	for _, vs := range vals {
		for _, v := range vs {
			if !interesting(v) {
				continue
			}
			if cache.shapes(md.Key(), v, a.graphql, shapes) == 0 {
				return false
			}
			seen = true
		}
	}
	return seen
}

// mixedText reports whether v is text with a little code in it: at least
// six words, three in five of them plain words that are not SQL keywords,
// and nothing that breaks out of a context (breaksOut). A SQL statement
// quoted in a sentence, a path or a shell variable in a support ticket
// are mixed text; an injection is not, or it sets off more than one rule.
func mixedText(v string) bool {
	if len(v) < 24 || len(v) > 8192 || breaksOut(v) {
		return false
	}
	words, n := 0, 0
	for _, f := range strings.Fields(v) {
		n++
		f = strings.Trim(f, ".,!?:()")
		if f != "" && plainWord(f) && !sqlKeyword(f) {
			words++
		}
	}
	return n >= 6 && words >= 4 && words*5 >= n*3
}

// breaksOut reports whether v holds what a payload uses to leave the
// context it is put in: a quote that opens (apostrophes inside or after a
// word aside), a double quote or backtick, a comment (--, /*, #), a
// command separator or substitution (; | && $( ${ and a line break),
// markup (< before a letter, /, ! or ?), a template ({{, {%), a
// traversal, or a control character.
func breaksOut(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return true // line breaks and tabs included
		case c == '"' || c == '`' || c == ';' || c == '|' || c == '#':
			return true
		case c == '\'' && (i == 0 || !isLetterByte(v[i-1])):
			return true
		case c == '<' && i+1 < len(v) && (isLetterByte(v[i+1]) || strings.IndexByte("/!?%", v[i+1]) >= 0):
			return true
		case cmdVariable(v, i):
			return true
		}
	}
	for _, s := range [...]string{"--", "/*", "*/", "&&", "$(", "${", "{{", "{%", "../", "..\\"} {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// sqlKeyword reports whether w is a SQL keyword, which counts as code, not
// as a word of text.
func sqlKeyword(w string) bool {
	switch strings.ToLower(w) {
	case "select", "from", "where", "union", "insert", "into", "update", "delete", "drop", "and", "or",
		"not", "null", "is", "like", "having", "order", "group", "by", "exec", "execute", "sleep",
		"benchmark", "waitfor", "case", "when", "then", "else", "end", "if", "values", "table",
		"xor", "limit", "offset", "join", "declare", "cast", "convert", "char", "concat", "all", "distinct":
		return true
	}
	return false
}

// cmdVariable reports whether v[i] starts a Windows command variable
// (%a, %%a, %PATH%): "50% off" does not.
func cmdVariable(v string, i int) bool {
	if v[i] != '%' || i+1 >= len(v) {
		return false
	}
	c := v[i+1]
	return c == '%' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '~'
}

// numericBraces reports whether v has a brace group with a comma and every
// such group holds digits and commas only ({2,}, {7,20}).
func numericBraces(v string) bool {
	found := false
	for i := strings.IndexByte(v, '{'); i >= 0; {
		j := strings.IndexByte(v[i:], '}')
		if j < 0 {
			break
		}
		g := v[i+1 : i+j]
		if strings.IndexByte(g, ',') >= 0 {
			if strings.Trim(g, "0123456789,") != "" || strings.Trim(g, ",") == "" {
				return false
			}
			found = true
		}
		k := strings.IndexByte(v[i+j:], '{')
		if k < 0 {
			break
		}
		i += j + k
	}
	return found
}
