package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads and parses the file at path; see Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes a configuration file strictly, expands ${NAME} environment
// references, applies defaults and validates the result. filename only
// labels errors. On failure the error is an Errors holding every problem
// found in the file, each with its line, and the Config is nil.
func Parse(data []byte, filename string) (*Config, error) {
	c, errs := parse(data, os.LookupEnv)
	if len(errs) == 0 {
		c.File = filename
		return c, nil
	}
	for _, e := range errs {
		e.File = filename
	}
	errs.sortByLine()
	return nil, errs
}

// parse runs every step and gathers their errors. The steps go on after a
// failure so that one run reports all problems; merge drops the follow-on
// errors of a field that already failed.
func parse(data []byte, lookup func(string) (string, bool)) (*Config, Errors) {
	root, errs := parseTree(data)
	if root == nil {
		return nil, errs
	}
	errs = errs.merge(dropDuplicateKeys(root))
	idx := buildIndex(root)
	errs = errs.merge(expandEnv(root, lookup))
	errs = errs.merge(unknownFields(data, idx))
	c := &Config{}
	if err := root.Decode(c); err != nil {
		errs = errs.merge(idx.yamlErrors(err))
	}
	c.ApplyDefaults()
	markRulesLines(root, c)
	errs = errs.merge(c.validate(idx))
	return c, errs
}

// Equal reports whether p and q configure the same policy: the same fields,
// wherever in the file they are (RulesLine is not compared).
func (p WAFPolicy) Equal(q WAFPolicy) bool {
	p.rulesLine, q.rulesLine = 0, 0
	return reflect.DeepEqual(p, q)
}

// RulesLine is the line of the config file on which the policy's inline
// rules begin, so that a SecLang error in them can name the file's line;
// 0 when unknown (a Config built in code).
func (p *WAFPolicy) RulesLine() int { return p.rulesLine }

// markRulesLines records where each WAF policy's inline rules begin: the
// line after the key for a block scalar (rules: |), the key's line for a
// scalar written beside it.
func markRulesLines(root *yaml.Node, c *Config) {
	policies := mappingValue(root, "waf")
	if policies == nil || policies.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(policies.Content); i += 2 {
		p := c.WAF[policies.Content[i].Value]
		rules := mappingValue(policies.Content[i+1], "rules")
		if p == nil || rules == nil || rules.Kind != yaml.ScalarNode {
			continue
		}
		p.rulesLine = rules.Line
		if rules.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
			p.rulesLine++
		}
	}
}

// mappingValue is the value of key in the mapping n (the document's root
// mapping when n is a document), or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// parseTree parses data into a node tree whose root is a mapping. A file
// holds one document: a second one is more likely a mistake than intended.
func parseTree(data []byte) (*yaml.Node, Errors) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{Msg: "the file is empty"}}
		}
		return nil, Errors{syntaxError(err)}
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, Errors{{Line: doc.Line, Msg: "the file is empty"}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, Errors{{Line: root.Line, Msg: "the top level must be a mapping of sections (listeners:, routes:, ...)"}}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return root, nil
	case err != nil:
		return root, Errors{syntaxError(err)}
	default:
		return root, Errors{{Line: extra.Line, Msg: "only one YAML document is allowed (found a second \"---\")"}}
	}
}

// isNull reports whether n is an empty or null document body.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// syntaxError converts a yaml.v3 parse error ("yaml: line 3: ...").
func syntaxError(err error) *Error {
	e := (*lineIndex)(nil).yamlError(err.Error())
	if parserProblems[e.Msg] {
		// yaml.v3 adds 1 to the 0-based line of scanner errors only; the
		// parser's come out one line early (and as no line for line 1).
		e.Line++
	}
	e.Msg = "invalid YAML: " + e.Msg
	return e
}

// parserProblems are the messages of yaml.v3's parser (parserc.go), as
// opposed to its scanner.
var parserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// unknownFields reports the fields no type has, using yaml.v3's own strict
// mode on the file as written. Strictness cannot be had on the node tree
// (yaml.Node.Decode has no KnownFields), and the tree is what holds the
// expanded values and the lines, so the values are decoded from the tree and
// this pass only keeps the unknown-field messages. Keys are never expanded,
// so the two passes see the same fields.
func unknownFields(data []byte, idx *lineIndex) Errors {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var scratch Config
	var te *yaml.TypeError
	if err := dec.Decode(&scratch); !errors.As(err, &te) {
		return nil
	}
	var errs Errors
	for _, m := range te.Errors {
		if strings.Contains(m, " not found in type ") {
			errs = append(errs, idx.yamlError(m))
		}
	}
	return errs
}
