package waf

import (
	"strings"
	"unicode/utf8"
)

// Injection context: two shapes of text that the CRS's SQL and command
// rules read as attacks but that cannot work as one, argued from what an
// injection needs to do in the statement or command line it is put in,
// not from what the text looks like.
//
//   - shapeSQLDead (sqlDead): a value that makes every SQL statement it is
//     put in fail to parse, in every context it could be put in. A SQL
//     injection has to leave a statement the database runs; a value with
//     two operators or two operands in a row (", and", "= =", "a b c",
//     "4.8 kg") before any comment breaks the statement whatever the
//     application wrote around it, so nothing of it runs.
//   - shapeShellFilter (shellFilterPipe): a command line whose commands
//     after the first are text filters that read only their standard input
//     (kubectl get pods | grep checkout). Injected after the application's
//     command, it filters that command's output and runs nothing else; a
//     command injection needs a separator before a command of its own
//     choosing (; && || a line break), a substitution, a redirection, or a
//     filter that reads files or runs programs.

// sqlDead reports whether v, put into a SQL statement, leaves a statement
// no SQL dialect parses, in each context v could be put in: bare (a number,
// a column, an expression) and inside each kind of quoted string or
// identifier ('...', "...", [...]) that v holds the closing quote of. A
// context v cannot leave (a quoted string without its quote) is inert. Only
// the text before a comment (--, #) or a statement separator (the
// statements before it may run) counts. The text after each character
// outside ASCII is a context too (a driver may map it to a quote). A
// value with a backslash (an escape that changes where a string ends),
// two dollar signs (a Postgres $$ string), a backtick, a block comment (MySQL runs /*! ... */) or a call of a SQL
// keyword (sqlKeywordCall) is never dead.
func sqlDead(v string) bool {
	if len(v) > 8192 || strings.ContainsAny(v, "\\`") || strings.Contains(v, "/*") || strings.Count(v, "$") >= 2 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			return false
		}
	}
	if sqlKeywordCall(v) || !sqlBroken(v, false) {
		return false
	}
	for _, q := range [...]byte{'\'', '"', ']'} {
		if rest, ok := afterClosingQuote(v, q); ok && !sqlBroken(rest, true) {
			return false
		}
	}
	// A character outside ASCII may end a string too, where a database
	// or a driver maps it to a quote (best-fit conversion of U+02BC or
	// U+2019 to '): the text after each one must be broken as well.
	n := 0
	for i, r := range v {
		if r < utf8.RuneSelf {
			continue
		}
		if n++; n > 16 || !sqlBroken(v[i+utf8.RuneLen(r):], true) {
			return false
		}
	}
	return true
}

// sqlKeywordCall reports whether v calls a function by a name SQL reserves
// (benchmark(, sleep(, char(, if(, convert(): that is SQL, not arithmetic
// or prose, and a probe sent broken still asks for the error or the delay
// it causes, so such a value is never dead.
func sqlKeywordCall(v string) bool {
	for i := strings.IndexByte(v, '('); i > 0; {
		j := i
		for j > 0 && sqlWordByte(v[j-1]) {
			j--
		}
		if j < i && sqlReserved[strings.ToLower(v[j:i])] {
			return true
		}
		k := strings.IndexByte(v[i+1:], '(')
		if k < 0 {
			break
		}
		i += k + 1
	}
	return false
}

// afterClosingQuote returns what follows the first quote q in v that is
// not doubled (a doubled quote, ” or ]], stays inside the string), and
// false when v has none: v cannot leave a string quoted with q.
func afterClosingQuote(v string, q byte) (string, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] != q {
			continue
		}
		if i+1 < len(v) && v[i+1] == q {
			i++
			continue
		}
		return v[i+1:], true
	}
	return "", false
}

// SQL token kinds, as far as sqlBroken needs them. sqlOther is anything
// it makes no claim about (keywords, unary and ambiguous operators,
// variables, punctuation of some dialect): it ends any sequence.
const (
	sqlOther = iota
	sqlNum
	sqlStr
	sqlIdent
	sqlBin // an operator that only joins two operands: = <> < AND OR ...
	sqlComma
	sqlLParen
	sqlRParen
)

// sqlOpBytes are the bytes of SQL's symbolic operators.
const sqlOpBytes = "=<>!+-*/%^&|~:"

// sqlBroken reports whether s, as SQL text, holds a sequence of tokens no
// dialect accepts before its first comment. afterOperand: s follows a
// complete operand (a string the value closed).
func sqlBroken(s string, afterOperand bool) bool {
	p2, p1 := sqlOther, sqlOther
	if afterOperand {
		p1 = sqlStr
	}
	for i := 0; i < len(s); {
		c := s[i]
		var k int
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '#':
			return false // a comment in MySQL: the rest may not be SQL
		case c == ';':
			return false // the statements before a separator may run
		case c == '\'' || c == '"':
			j := i + 1
			for {
				n := strings.IndexByte(s[j:], c)
				if n < 0 {
					// The string runs on into the application's text: it
					// is still a string where it starts.
					return sqlImpossible(p2, p1, sqlStr)
				}
				j += n + 1
				if j < len(s) && s[j] == c {
					j++
					continue
				}
				break
			}
			k, i = sqlStr, j
		case c == '(':
			k, i = sqlLParen, i+1
		case c == ')':
			k, i = sqlRParen, i+1
		case c == ',':
			k, i = sqlComma, i+1
		case sqlWordByte(c):
			j := i
			for j < len(s) && sqlWordByte(s[j]) {
				j++
			}
			w := s[i:j]
			k, i = sqlWordKind(w), j
			if j < len(s) && (s[j] == '\'' || s[j] == '"') && literalPrefix(w) {
				k = sqlOther // a literal's prefix: N'x', _utf8'x', X'41'
			}
		case strings.IndexByte(sqlOpBytes, c) >= 0:
			j := i
			for j < len(s) && strings.IndexByte(sqlOpBytes, s[j]) >= 0 {
				j++
			}
			op := s[i:j]
			if strings.Contains(op, "--") {
				return false // a comment
			}
			k, i = sqlOpKind(op), j
		default:
			k, i = sqlOther, i+1
		}
		if sqlImpossible(p2, p1, k) {
			return true
		}
		p2, p1 = p1, k
	}
	return false
}

// sqlImpossible reports whether token kind k cannot follow p2 p1 in any
// SQL dialect.
func sqlImpossible(p2, p1, k int) bool {
	switch p1 {
	case sqlComma, sqlBin:
		// ", and", "= =", "and ,", ", )", "= )"
		return k == sqlBin || k == sqlComma || k == sqlRParen
	case sqlLParen:
		return k == sqlBin || k == sqlComma // "(=", "(,"; "()" is a call
	case sqlNum:
		return k == sqlNum || k == sqlLParen // "1 2", "4 ("; "1 a" is an alias
	case sqlStr:
		return k == sqlNum // "'a' 1"
	case sqlRParen:
		return k == sqlNum || k == sqlLParen
	case sqlIdent:
		if k == sqlNum {
			return true // "kg 6": no dialect puts a number after a name
		}
		// An operand, an alias, and a third name or a string: "your
		// docs say", "'a' b 'c'" (a name before a string that is no
		// keyword is an alias or a literal's type, and either is an
		// operand of its own).
		return (k == sqlIdent || k == sqlStr) && (p2 == sqlNum || p2 == sqlStr || p2 == sqlIdent || p2 == sqlRParen)
	}
	return false
}

// literalPrefix reports whether w, glued to a quote, makes one literal
// with the string: N'x', X'41', B'01', E'x', Q'[x]', R'x', _utf8'x'.
func literalPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "n", "x", "b", "e", "q", "nq", "r", "br", "rb", "u":
		return true
	}
	return w[0] == '_'
}

func sqlWordByte(c byte) bool {
	return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c == '@' || c == '.' || c >= 0x80
}

// sqlWordKind classifies a word: a number (digits with at most one
// point), a name (letters first, not a keyword), AND/OR/XOR as binary
// operators; anything else (keywords, variables, 0x1f, 1e5, 40x30) is
// sqlOther.
func sqlWordKind(w string) int {
	switch c := w[0]; {
	case c >= '0' && c <= '9' || c == '.':
		dots := 0
		for i := 0; i < len(w); i++ {
			switch {
			case w[i] == '.':
				dots++
			case w[i] < '0' || w[i] > '9':
				return sqlOther
			}
		}
		if dots > 1 || w == "." {
			return sqlOther
		}
		return sqlNum
	case c == '$' || c == '@':
		return sqlOther
	}
	lw := strings.ToLower(w)
	switch lw {
	case "and", "or", "xor":
		return sqlBin
	}
	if sqlReserved[lw] || strings.HasSuffix(w, ".") {
		return sqlOther
	}
	return sqlIdent
}

// sqlOpKind: the operators that can only stand between two operands.
// Those that may also start one (- + ~ ! and the Postgres prefix
// operators |/ ||/ !!) and * (a wildcard) are sqlOther.
func sqlOpKind(op string) int {
	switch op {
	case "=", "==", "<", ">", "<=", ">=", "<>", "!=", "<=>", "/", "%", "^", "&", "|", "||", "&&", "<<", ">>", ":=":
		return sqlBin
	}
	return sqlOther
}

// sqlReserved are words of SQL's grammar in some dialect (keywords, type
// names, the words of typed literals and of T-SQL's and Oracle's
// statements): a name next to one of them may be valid, so sqlBroken
// makes no claim about them.
var sqlReserved = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`
	absolute action add after all alter analyze any array as asc at authorization
	backup begin benchmark between bigint binary bit blob boolean both break browse bulk by
	call cascade case cast catalog char character check checkpoint close clustered coalesce
	collate column commit compute connect constraint contains continue convert create cross
	current current_date current_time current_timestamp current_user cursor
	database databases date datetime day dbcc deallocate dec decimal declare default delay
	delete desc describe deterministic disk distinct distributed div do double drop dump
	each else elseif elsif end errlvl escape except exec execute exists exit explain external
	false fetch file fillfactor first float for force foreign freetext from full function
	glob go goto grant group having high_priority holdlock hour identity if ignore ilike
	immediate in index inner inout insert int integer intersect interval into is isnull
	join key kill language last lateral leading left level like limit lineno load local
	lock long loop match merge minute mod modify month names national natural nchar next overlaps uescape
	no nocheck nonclustered not nothing notnull nowait null nullif number numeric nvarchar
	of off offset offsets on only open opendatasource openquery openrowset openxml option
	or order out outer over partition percent pivot plan precision prepare primary print
	prior privileges proc procedure public raiserror range read readtext real reconfigure
	recursive references regexp release rename repeat replace replication restore restrict
	return returning revert revoke right rlike rollback row rowcount rowguidcol rownum rows
	rule save savepoint schema second securityaudit select semantickeyphrasetable session
	session_user set setuser show shutdown similar sleep smallint some sounds statistics
	straight_join system_user table tablesample text textsize then time timestamp tinyint to
	top tran transaction trigger true truncate try_convert union unique unknown unlock unnest
	unpivot unsigned update updatetext usage use user using value values varbinary varchar
	varying view waitfor when where while window with within writetext xml year zone
	`) {
		m[w] = true
	}
	return m
}()

// shellFilterPipe reports whether v is one command line whose commands
// after the first are text filters reading only their standard input:
// grep with a pattern, head, tail, wc, sort, uniq, cut, tr, with options
// that name no file and run nothing. The line holds no separator but |
// (no ||), no substitution, redirection, glob or variable; the filters'
// words may be quoted whole ('two words'), the first command's not; the
// first command names no absolute path and no program that runs others
// or reaches the network (a shell, an interpreter, sudo, curl).
func shellFilterPipe(v string) bool {
	if len(v) > 1024 || strings.Contains(v, "||") || strings.Contains(v, "..") {
		return false
	}
	for i := 0; i < len(v); i++ {
		if !shellPlainByte(v[i]) && v[i] != '|' && v[i] != '\'' && v[i] != '"' {
			return false
		}
	}
	parts := splitUnquoted(v, '|')
	if len(parts) < 2 || strings.ContainsAny(parts[0], `'"`) {
		return false
	}
	first := strings.Fields(parts[0])
	if len(first) == 0 {
		return false
	}
	for _, w := range first {
		if w[0] == '/' || shellRunner[w[strings.LastIndexByte(w, '/')+1:]] {
			return false
		}
	}
	for _, p := range parts[1:] {
		words, ok := shellWords(p)
		if !ok || !stdinFilter(words) {
			return false
		}
	}
	return true
}

// shellPlainByte: the bytes of a command line's plain words.
func shellPlainByte(c byte) bool {
	return c|0x20 >= 'a' && c|0x20 <= 'z' || c >= '0' && c <= '9' || strings.IndexByte(" -_.,:=/@+", c) >= 0
}

// splitUnquoted splits v at sep outside single and double quotes, or
// returns nil when a quote is left open.
func splitUnquoted(v string, sep byte) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == sep:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	if quote != 0 {
		return nil
	}
	return append(out, v[start:])
}

// shellWords splits a filter's command into words as the shell does for
// plain words and whole quoted words ('two words', "x-y"), whose quotes
// it removes; a quote inside a word, or anything in quotes but plain
// bytes (no $, backtick or backslash, which double quotes expand), is
// refused.
func shellWords(p string) ([]string, bool) {
	var words []string
	for i := 0; i < len(p); {
		switch c := p[i]; {
		case c == ' ':
			i++
		case c == '\'' || c == '"':
			j := strings.IndexByte(p[i+1:], c)
			if j < 0 {
				return nil, false
			}
			w := p[i+1 : i+1+j]
			for k := 0; k < len(w); k++ {
				if !shellPlainByte(w[k]) {
					return nil, false
				}
			}
			i += j + 2
			if w == "" || i < len(p) && p[i] != ' ' {
				return nil, false // '' or a quote glued to more
			}
			words = append(words, w)
		default:
			j := i
			for j < len(p) && p[j] != ' ' {
				if p[j] == '\'' || p[j] == '"' {
					return nil, false
				}
				j++
			}
			words = append(words, p[i:j])
			i = j
		}
	}
	return words, true
}

// shellRunner are programs that run other programs, read or run code
// from their arguments, or reach the network.
var shellRunner = func() map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(`sh bash zsh dash ksh csh tcsh fish busybox env exec eval source
	sudo su doas nohup xargs timeout nice watch time command builtin awk gawk mawk sed find dd tee
	python python2 python3 perl ruby php node nodejs deno lua tclsh expect
	nc ncat netcat socat telnet curl wget ssh scp sftp rsync ftp tftp`) {
		m[w] = true
	}
	return m
}()

// stdinFilters are the text filters shellFilterPipe accepts, with their
// short options that name no file, write none and run nothing (grep's -r
// and -f, sort's -o and -T and every long option are left out): flags
// take no argument, withArg take one, attached (-n5, -d:) or the next word.
var stdinFilters = map[string]struct{ flags, withArg string }{
	"grep":  {"iyvcnwxEFGPoqsbhHlL", "ABCme"},
	"egrep": {"iyvcnwxoqsbhHlL", "ABCme"},
	"fgrep": {"iyvcnwxoqsbhHlL", "ABCme"},
	"head":  {"qv", "nc"},
	"tail":  {"qvf", "nc"},
	"wc":    {"lwcmL", ""},
	"sort":  {"bdfghiMnRrsuV", "kt"},
	"uniq":  {"cdiuDz", "fs"},
	"cut":   {"sz", "bcdf"},
	"tr":    {"cdst", ""},
}

// stdinFilter reports whether words are a text filter that reads its
// standard input only: grep with exactly one pattern, tr with its sets,
// the others with no operand but numbers and field lists (head -n 5,
// sort -k 2, cut -f1,3).
func stdinFilter(words []string) bool {
	if len(words) == 0 {
		return false
	}
	f, ok := stdinFilters[words[0]]
	if !ok {
		return false
	}
	patterns := 0
	for _, w := range words[1:] {
		switch {
		case strings.HasPrefix(w, "--"):
			return false
		case w[0] == '-' && len(w) > 1:
		flags:
			for i := 1; i < len(w); i++ {
				c := w[i]
				switch {
				case c >= '0' && c <= '9' && i == 1:
					if strings.Trim(w[1:], "0123456789") != "" {
						return false
					}
					break flags // head -5
				case strings.IndexByte(f.withArg, c) >= 0:
					break flags // the rest, or the next word, is its argument
				case strings.IndexByte(f.flags, c) < 0:
					return false
				}
			}
		case strings.Trim(w, "0123456789,.:") == "":
			// a count, a key or a field list: head -n 5, sort -k 2,3
		default:
			patterns++
		}
	}
	switch words[0] {
	case "grep", "egrep", "fgrep":
		return patterns == 1
	case "tr":
		return patterns <= 2
	}
	return patterns == 0
}
