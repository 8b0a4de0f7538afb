package config

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a configuration file. Operators fix files from
// these messages, so each names the file, the line, the field and the value.
type Error struct {
	// File is the file's path; "" for a Config built in code.
	File string
	// Line is 1-based; 0 when unknown (a Config built in code).
	Line int
	// Path is the field or item at fault: "listeners.web.limits.idle_timeout",
	// "routes[2]".
	Path string
	// Name is the name of the item at Path when it has one (a route's),
	// shown in quotes after Path.
	Name string
	// Msg says what is wrong.
	Msg string

	// at is the most precise field path known, used to find the line and
	// to drop follow-on errors; it may be deeper than Path.
	at string
}

// Error formats e as `rampart.yaml:14: routes[2] "api": upstream "missing"
// is not defined`, leaving out what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File + ":" + strconv.Itoa(e.Line) + ": ")
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Name != "" {
			b.WriteString(" " + strconv.Quote(e.Name))
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems of one file, sorted by line. Parse and
// Validate return them so an operator fixes a file in one pass.
type Errors []*Error

// Error lists the errors one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// sortByLine orders es by line, keeping the order of discovery within one.
func (es Errors) sortByLine() {
	slices.SortStableFunc(es, func(a, b *Error) int { return a.Line - b.Line })
}

// merge appends later to es, leaving out errors at or under a path that es
// already faults: a field that failed to decode is zero, and saying it is
// also "required" would only be noise. Errors within later are all kept.
func (es Errors) merge(later Errors) Errors {
	failed := make(map[string]bool, len(es))
	for _, e := range es {
		failed[e.at] = true
	}
	for _, e := range later {
		if !coveredBy(e.at, failed) {
			es = append(es, e)
		}
	}
	return es
}

// coveredBy reports whether path or one of its ancestors is in failed.
func coveredBy(path string, failed map[string]bool) bool {
	for ; path != ""; path = parentPath(path) {
		if failed[path] {
			return true
		}
	}
	return false
}

var (
	lineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (?:column (\d+): )?(.*)$`)
	unknownRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	alreadyRE = regexp.MustCompile(`^field (\S+) already set in type \S+$`)
	dupKeyRE  = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	unmarshRE = regexp.MustCompile("^cannot unmarshal (!!\\w+|\\S+)(?: `(.*)`)? into (\\S+)$")
)

// yamlErrors converts an error of yaml.v3 into Errors. A *yaml.TypeError
// holds one "line N: ..." message per problem; anything else (a syntax
// error, excessive aliasing) is one message.
func (x *lineIndex) yamlErrors(err error) Errors {
	msgs := []string{err.Error()}
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	}
	out := make(Errors, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, x.yamlError(m))
	}
	return out
}

// yamlError converts one yaml.v3 message, giving it a path and rewording it
// to name the field and the value rather than Go types.
func (x *lineIndex) yamlError(msg string) *Error {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return &Error{Msg: strings.TrimPrefix(msg, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	e := x.describe(line, m[3])
	if m[2] != "" && x != nil {
		// Our own unmarshalers give the column: exact.
		col, _ := strconv.Atoi(m[2])
		e = &Error{at: x.columnPath(line, col), Msg: m[3]}
	}
	e.Line, e.Path = line, e.at
	return e
}

// describe rewords the text of one yaml.v3 message found on line.
func (x *lineIndex) describe(line int, text string) *Error {
	if x == nil {
		return &Error{Msg: text}
	}
	if m := unknownRE.FindStringSubmatch(text); m != nil {
		msg := "unknown field"
		if s := suggestField(m[2], m[1]); s != "" {
			msg += " (did you mean " + strconv.Quote(s) + "?)"
		}
		if p := x.keyPath(line, m[1]); p != "" {
			return &Error{at: p, Msg: msg}
		}
		return &Error{Msg: msg + ": " + strconv.Quote(m[1])}
	}
	if m := alreadyRE.FindStringSubmatch(text); m != nil {
		return &Error{at: x.keyPath(line, m[1]), Msg: "field " + strconv.Quote(m[1]) + " is set twice"}
	}
	if m := dupKeyRE.FindStringSubmatch(text); m != nil {
		return &Error{at: x.keyPath(line, m[1]), Msg: "duplicate key, first defined at line " + m[2]}
	}
	if m := unmarshRE.FindStringSubmatch(text); m != nil {
		return x.wrongType(line, m[1], m[2], m[3])
	}
	return &Error{Msg: text}
}

// wrongType rewords "cannot unmarshal !!str `abc` into int".
func (x *lineIndex) wrongType(line int, tag, value, goType string) *Error {
	want := describeGoType(goType)
	switch tag {
	case "!!map":
		return &Error{at: x.valuePath(line, yaml.MappingNode, ""), Msg: "got a mapping; want " + want}
	case "!!seq":
		return &Error{at: x.valuePath(line, yaml.SequenceNode, ""), Msg: "got a list; want " + want}
	}
	p := x.valuePath(line, yaml.ScalarNode, value)
	if full, ok := x.value(line, p); ok {
		value = full
	}
	return &Error{at: p, Msg: "invalid value " + strconv.Quote(value) + ": want " + want}
}

// describeGoType names what a Go type expects in YAML words.
func describeGoType(t string) string {
	switch {
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "[]string":
		return "a list of strings"
	case t == "[]int":
		return "a list of integers"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	}
	return "a mapping"
}
