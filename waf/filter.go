package waf

import "strings"

// isFilterExpr reports whether v is a whole filter expression of the
// query languages applications take in an argument (JQL, OData $filter,
// RSQL, search syntaxes):
//
//	expr    = term { (AND | OR) term } [ ORDER BY field [ASC|DESC] { , field [ASC|DESC] } ]
//	term    = [NOT] ( "(" expr ")" | call | field op value | field [NOT] IN "(" values ")"
//	          | field IS [NOT] (EMPTY | NULL) )
//	op      = = != ~ !~ > < >= <= eq ne gt lt ge le like
//	value   = number [unit] | 'string' | "string" | name | call
//	call    = name "(" [ value { , value } ] ")"
//
// A comparison must start with a field name: a tautology of literals
// (1=1, 'a'='a') or a quote left open is not a filter expression.
func isFilterExpr(v string) bool {
	p := filterParser{toks: filterTokens(v)}
	if p.toks == nil {
		return false
	}
	if !p.expr(0) {
		return false
	}
	if p.keyword("order") {
		if !p.keyword("by") {
			return false
		}
		for {
			if p.next().kind != tokName {
				return false
			}
			_ = p.keyword("asc") || p.keyword("desc")
			if !p.punct(",") {
				break
			}
		}
	}
	return p.i == len(p.toks)
}

const (
	tokName = iota + 1
	tokNumber
	tokString
	tokPunct
)

type filterTok struct {
	kind int
	text string
}

// filterTokens splits v into tokens, or returns nil when v holds what no
// filter expression does (an unterminated string, an unknown character).
func filterTokens(v string) []filterTok {
	var toks []filterTok
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case isLetterByte(c) || c == '_':
			j := i + 1
			for j < len(v) && (isLetterByte(v[j]) || v[j] >= '0' && v[j] <= '9' || v[j] == '_' || v[j] == '.' || v[j] == '-' || v[j] == '/') {
				j++
			}
			toks = append(toks, filterTok{tokName, v[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(v) && v[i+1] >= '0' && v[i+1] <= '9':
			j := i + 1
			for j < len(v) && (v[j] >= '0' && v[j] <= '9' || v[j] == '.' || v[j] == ':' || v[j] == '-' || v[j] == 'T' || v[j] == 'Z') {
				j++
			}
			// A unit (JQL's relative dates -30d, 4w; sizes 10MB): at
			// most two letters, then the token ends.
			if k := j; k < len(v) && isLetterByte(v[k]) && v[k] < 0x80 {
				for k < len(v) && k < j+3 && isLetterByte(v[k]) && v[k] < 0x80 {
					k++
				}
				if k-j <= 2 && (k == len(v) || !isLetterByte(v[k]) && !(v[k] >= '0' && v[k] <= '9')) {
					j = k
				}
			}
			toks = append(toks, filterTok{tokNumber, v[i:j]})
			i = j
		case c == '\'' || c == '"':
			j := strings.IndexByte(v[i+1:], c)
			if j < 0 {
				return nil
			}
			s := v[i+1 : i+1+j]
			if strings.ContainsAny(s, "'\"\\;") {
				return nil
			}
			toks = append(toks, filterTok{tokString, s})
			i += j + 2
		default:
			for _, op := range [...]string{"!=", ">=", "<=", "!~", "=", "~", ">", "<", "(", ")", ","} {
				if strings.HasPrefix(v[i:], op) {
					toks = append(toks, filterTok{tokPunct, op})
					i += len(op)
					goto next
				}
			}
			return nil
		next:
		}
	}
	return toks
}

type filterParser struct {
	toks []filterTok
	i    int
}

func (p *filterParser) peek() filterTok {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return filterTok{}
}

func (p *filterParser) next() filterTok {
	t := p.peek()
	if p.i < len(p.toks) {
		p.i++
	}
	return t
}

func (p *filterParser) keyword(w string) bool {
	if t := p.peek(); t.kind == tokName && strings.EqualFold(t.text, w) {
		p.i++
		return true
	}
	return false
}

func (p *filterParser) punct(s string) bool {
	if t := p.peek(); t.kind == tokPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

// expr parses terms joined by AND and OR; depth bounds the nesting.
func (p *filterParser) expr(depth int) bool {
	if depth > 16 {
		return false
	}
	for {
		if !p.term(depth) {
			return false
		}
		if !(p.keyword("and") || p.keyword("or")) {
			return true
		}
	}
}

func (p *filterParser) term(depth int) bool {
	_ = p.keyword("not")
	if p.punct("(") {
		return p.expr(depth+1) && p.punct(")")
	}
	t := p.next()
	if t.kind != tokName || isFilterKeyword(t.text) {
		return false
	}
	if p.punct("(") { // a call, boolean (contains(Name,'x')) or compared (year(d) eq 2026)
		if !p.args() {
			return false
		}
		if op := p.peek(); op.kind == tokPunct && op.text != "(" && op.text != ")" && op.text != "," ||
			op.kind == tokName && isComparison(op.text) {
			p.i++
			return p.value()
		}
		return true
	}
	switch op := p.peek(); {
	case op.kind == tokPunct && op.text != "(" && op.text != ")" && op.text != ",":
		p.i++
		return p.value()
	case op.kind == tokName && isComparison(op.text):
		p.i++
		return p.value()
	case op.kind == tokName && strings.EqualFold(op.text, "in"), op.kind == tokName && strings.EqualFold(op.text, "not"):
		p.i++
		if strings.EqualFold(op.text, "not") && !p.keyword("in") {
			return false
		}
		return p.punct("(") && p.args()
	case op.kind == tokName && strings.EqualFold(op.text, "is"):
		p.i++
		_ = p.keyword("not")
		return p.keyword("empty") || p.keyword("null")
	}
	return false
}

// args parses call arguments up to the closing parenthesis.
func (p *filterParser) args() bool {
	if p.punct(")") {
		return true
	}
	for {
		if !p.value() {
			return false
		}
		if p.punct(")") {
			return true
		}
		if !p.punct(",") {
			return false
		}
	}
}

func (p *filterParser) value() bool {
	t := p.next()
	switch t.kind {
	case tokNumber, tokString:
		return true
	case tokName:
		if isFilterKeyword(t.text) {
			return false
		}
		if p.punct("(") {
			return p.args()
		}
		return true
	}
	return false
}

func isComparison(w string) bool {
	switch strings.ToLower(w) {
	case "eq", "ne", "gt", "lt", "ge", "le", "like", "has":
		return true
	}
	return false
}

// isFilterKeyword: words that cannot be a field or a value, so that
// "a = 1 or or" and SQL keywords do not parse.
func isFilterKeyword(w string) bool {
	switch strings.ToLower(w) {
	case "and", "or", "not", "in", "is", "order", "by", "select", "union", "from", "where", "having",
		"insert", "update", "delete", "drop", "exec", "execute", "sleep", "benchmark", "waitfor", "declare":
		return true
	}
	return false
}

// shellInert reports whether filter expression v is inert on a command
// line: it calls nothing (Process.spawn("id") parses as a call), and its
// strings hold no shell metacharacter. Outside its strings a filter
// expression holds none but comparison operators (the tokenizer refuses
// ; | & $ ` and line breaks).
func shellInert(v string) bool {
	toks := filterTokens(v)
	for i, t := range toks {
		switch {
		case t.kind == tokString && strings.ContainsAny(t.text, "$`|&;<>\n\r\\"):
			return false
		case t.kind == tokName && !isFilterKeyword(t.text) && i+1 < len(toks) && toks[i+1].kind == tokPunct && toks[i+1].text == "(":
			return false
		}
	}
	return true
}

// isODataExpand reports whether v is a whole OData $expand value:
// navigation paths, each with options in parentheses separated by ';'
// ($filter and $search a filter expression, $select and $orderby lists of
// names, $expand again, $top, $skip and $levels numbers, $count a
// boolean), joined by commas: Orders($filter=Year eq 2026;$select=Id).
func isODataExpand(v string, depth int) bool {
	if depth > 4 || v == "" {
		return false
	}
	for _, item := range splitTop(v, ',') {
		item = strings.TrimSpace(item)
		path, opts, hasOpts := strings.Cut(item, "(")
		if !odataPath(path) {
			return false
		}
		if !hasOpts {
			continue
		}
		opts, ok := strings.CutSuffix(opts, ")")
		if !ok {
			return false
		}
		for _, o := range splitTop(opts, ';') {
			name, val, ok := strings.Cut(strings.TrimSpace(o), "=")
			if !ok || !odataOptionValue(name, val, depth) {
				return false
			}
		}
	}
	return true
}

func odataOptionValue(name, val string, depth int) bool {
	switch name {
	case "$filter", "$search":
		return isFilterExpr(val)
	case "$expand":
		return isODataExpand(val, depth+1)
	case "$select", "$orderby":
		for _, f := range strings.Split(val, ",") {
			w := strings.Fields(f)
			if len(w) == 0 || len(w) > 2 || !odataPath(w[0]) ||
				len(w) == 2 && !strings.EqualFold(w[1], "asc") && !strings.EqualFold(w[1], "desc") {
				return false
			}
		}
		return true
	case "$top", "$skip", "$levels":
		if name == "$levels" && val == "max" {
			return true
		}
		for i := 0; i < len(val); i++ {
			if val[i] < '0' || val[i] > '9' {
				return false
			}
		}
		return val != "" && len(val) <= 9
	case "$count":
		return val == "true" || val == "false"
	}
	return false
}

// odataPath reports whether p is a navigation path (Orders,
// Customer/Address, *, Orders/$count, Orders/$ref).
func odataPath(p string) bool {
	if p == "*" {
		return true
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if i > 0 && i == len(segs)-1 && (s == "$ref" || s == "$count") {
			continue
		}
		if s == "" || len(s) > 128 {
			return false
		}
		for j := 0; j < len(s); j++ {
			c := s[j]
			if !(isLetterByte(c) && c < 0x80 || c == '_' || j > 0 && (c >= '0' && c <= '9' || c == '.')) {
				return false
			}
		}
	}
	return true
}

// splitTop splits s at sep outside parentheses and quotes, or returns nil
// when its parentheses do not balance.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return nil
			}
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if depth != 0 || quote != 0 {
		return nil
	}
	return append(out, s[start:])
}
