package config

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Decoding into Go values loses line numbers, yet every error must name its
// line. lineIndex keeps them, keyed both ways: by field path, for semantic
// errors found on the decoded Config, and by line, to give yaml.v3's
// "line N: ..." messages their field path.
type lineIndex struct {
	paths map[string]int      // path -> line of its key or list item
	lines map[int][]lineEntry // line -> the nodes on it, outermost first
}

// lineEntry is one node on a line.
type lineEntry struct {
	path   string
	value  string // a scalar's value; "" for mappings and lists
	kind   yaml.Kind
	column int
	key    bool // a mapping key rather than a value
}

// buildIndex indexes every node under root.
func buildIndex(root *yaml.Node) *lineIndex {
	x := &lineIndex{paths: map[string]int{}, lines: map[int][]lineEntry{}}
	walk(root, "", func(n *yaml.Node, path string, key bool) {
		// A key is visited before its value, so a field's line is its key's.
		if _, seen := x.paths[path]; !seen {
			x.paths[path] = n.Line
		}
		x.lines[n.Line] = append(x.lines[n.Line], lineEntry{path: path, value: n.Value, kind: n.Kind, column: n.Column, key: key})
	})
	return x
}

// walk calls visit for every key and value under n with its field path
// ("routes[2].match.host"); the root has path "". Aliases are not followed: their target is
// visited where it is defined, and an anchor may contain itself.
func walk(n *yaml.Node, path string, visit func(n *yaml.Node, path string, key bool)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walk(c, path, visit)
		}
		return
	case yaml.AliasNode:
		return
	}
	visit(n, path, false)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := joinPath(path, k.Value)
			visit(k, p, true)
			walk(n.Content[i+1], p, visit)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walk(c, path+"["+strconv.Itoa(i)+"]", visit)
		}
	}
}

// joinPath appends a mapping key to a path.
func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// line returns the line of path or, when path is absent from the file (a
// missing field), of its nearest ancestor. 0 means unknown.
func (x *lineIndex) line(path string) int {
	if x == nil {
		return 0
	}
	for path != "" {
		if l, ok := x.paths[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// keyPath returns the path of the mapping key named name on line.
func (x *lineIndex) keyPath(line int, name string) string {
	for _, e := range x.lines[line] {
		if e.key && e.value == name {
			return e.path
		}
	}
	return ""
}

// columnPath returns the path of the value at line and column.
func (x *lineIndex) columnPath(line, column int) string {
	for _, e := range x.lines[line] {
		if !e.key && e.column == column {
			return e.path
		}
	}
	return ""
}

// valuePath returns the path of the value on line that best fits a yaml.v3
// message: of the given kind and, when several are on the line (a flow
// mapping), with this value. yaml.v3 cuts long values to 7 bytes + "...".
func (x *lineIndex) valuePath(line int, kind yaml.Kind, value string) string {
	var found []lineEntry
	for _, e := range x.lines[line] {
		if !e.key && e.kind == kind {
			found = append(found, e)
		}
	}
	if len(found) == 0 {
		return ""
	}
	for _, e := range found {
		if e.value == value {
			return e.path
		}
	}
	if cut, ok := strings.CutSuffix(value, "..."); ok {
		for _, e := range found {
			if strings.HasPrefix(e.value, cut) {
				return e.path
			}
		}
	}
	return found[0].path
}

// value returns the full scalar value at path, for messages that yaml.v3
// has cut short.
func (x *lineIndex) value(line int, path string) (string, bool) {
	for _, e := range x.lines[line] {
		if !e.key && e.path == path && e.kind == yaml.ScalarNode {
			return e.value, true
		}
	}
	return "", false
}

// dropDuplicateKeys removes every repeated key of every mapping under root,
// keeping the first, and reports each. yaml.v3 refuses to decode a mapping
// with a repeated key at all, which would hide every other error in it.
func dropDuplicateKeys(root *yaml.Node) Errors {
	var errs Errors
	walk(root, "", func(n *yaml.Node, path string, key bool) {
		if key || n.Kind != yaml.MappingNode {
			return
		}
		first := map[string]int{}
		kept := n.Content[:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if line, dup := first[k.Value]; dup && k.Kind == yaml.ScalarNode {
				p := joinPath(path, k.Value)
				errs = append(errs, &Error{Line: k.Line, Path: p,
					Msg: "duplicate key, first defined at line " + strconv.Itoa(line)})
				continue
			}
			first[k.Value] = k.Line
			kept = append(kept, k, n.Content[i+1])
		}
		n.Content = kept
	})
	return errs
}

// has reports whether the file holds path (a key written, whatever its
// value).
func (x *lineIndex) has(path string) bool {
	if x == nil {
		return false
	}
	_, ok := x.paths[path]
	return ok
}

// rawValue returns the scalar at path as written in the file, before
// ${NAME} expansion.
func (x *lineIndex) rawValue(path string) (string, bool) {
	if !x.has(path) {
		return "", false
	}
	return x.value(x.paths[path], path)
}
