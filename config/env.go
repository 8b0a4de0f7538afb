package config

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// expandEnv replaces ${NAME} in every scalar value under root with the
// variable's value, so secrets and per-host addresses stay out of the file.
// It works on the node tree rather than the raw text so that a value cannot
// inject YAML structure, and lines stay those of the file. Mapping keys are
// left alone. "$$" stands for one "$"; a "$" not followed by "{" or "$" is
// kept as is (regular expressions in WAF rules end with "$").
func expandEnv(root *yaml.Node, lookup func(string) (string, bool)) Errors {
	var errs Errors
	walk(root, "", func(n *yaml.Node, path string, key bool) {
		if key || n.Kind != yaml.ScalarNode || !strings.Contains(n.Value, "$") {
			return
		}
		v, err := expand(n.Value, lookup)
		if err != nil {
			errs = append(errs, &Error{Line: n.Line, Path: path, Msg: err.Error(), at: path})
			return
		}
		if v == n.Value {
			return
		}
		n.Value = v
		// A plain scalar's type is resolved from its text: "${PORT}" was a
		// string, "8080" is an int. Quoted scalars stay strings.
		if n.Style&(yaml.TaggedStyle|yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
		}
	})
	return errs
}

// expand expands one value; see expandEnv.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf(`unterminated "${" in %q`, s)
			}
			name := s[i+2 : i+2+end]
			if !validEnvName(name) {
				return "", fmt.Errorf("invalid environment variable name %q", name)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("environment variable %q is not defined", name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String(), nil
}

// validEnvName reports whether name is a shell variable name.
func validEnvName(name string) bool {
	if name == "" || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
