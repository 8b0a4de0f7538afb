package waf

import (
	"encoding/json"
	"strings"
)

// maxGraphQLVariables bounds the leaves read from a GET request's
// variables argument.
const maxGraphQLVariables = 1024

// graphqlArgs calls add with the string arguments of a GraphQL document
// in argument k (query in a GET request, json.query in a JSON POST body),
// and with the leaf values of the JSON variables of a GET request. The
// CRS sees a document as one long argument, where a payload inside a
// string argument rarely looks like an attack: each string on its own
// does. A POST body's variables are JSON, which the engine already
// splits into arguments.
func graphqlArgs(k, v string, add func(k, v string)) {
	switch {
	case (k == "query" || strings.HasSuffix(k, ".query")) && looksGraphQL(v):
		graphqlStrings(v, func(s string) { add("graphql", s) })
	case k == "variables" || k == "json.variables":
		t := strings.TrimSpace(v)
		if len(t) < 2 || t[0] != '{' {
			return
		}
		var doc any
		if json.Unmarshal([]byte(t), &doc) != nil {
			return
		}
		n := 0
		jsonLeaves(doc, &n, func(s string) { add("graphql", s) })
	}
}

// graphqlDoc reports whether argument k holds a GraphQL document that
// parses (query in a GET request, json.query in a JSON POST body).
func graphqlDoc(k, v string) bool {
	return (k == "query" || strings.HasSuffix(k, ".query")) && looksGraphQL(v) && validGraphQL(v)
}

// looksGraphQL reports whether v starts as a GraphQL executable document.
func looksGraphQL(v string) bool {
	t := strings.TrimLeft(v, " \t\r\n,")
	if strings.HasPrefix(t, "{") {
		return true
	}
	for _, kw := range [...]string{"query", "mutation", "subscription", "fragment"} {
		if strings.HasPrefix(t, kw) {
			return true
		}
	}
	return false
}

// graphqlStrings calls f with the value of each string literal of doc:
// "quoted" (escapes undone) and """block""" strings. Comments (# to the end
// of the line) are skipped.
func graphqlStrings(doc string, f func(string)) {
	for i := 0; i < len(doc); i++ {
		switch doc[i] {
		case '#':
			for i < len(doc) && doc[i] != '\n' {
				i++
			}
		case '"':
			if strings.HasPrefix(doc[i:], `"""`) {
				end := strings.Index(doc[i+3:], `"""`)
				if end < 0 {
					f(doc[i+3:])
					return
				}
				f(doc[i+3 : i+3+end])
				i += 3 + end + 2
				continue
			}
			j := i + 1
			for j < len(doc) && doc[j] != '"' && doc[j] != '\n' {
				if doc[j] == '\\' {
					j++
				}
				j++
			}
			s := doc[i+1 : min(j, len(doc))]
			if u, ok := decodeEscapes(s, 0); ok {
				s = u
			}
			f(s)
			i = j
		}
	}
}

// jsonLeaves calls f with each string, number and boolean of v as text.
func jsonLeaves(v any, n *int, f func(string)) {
	if *n >= maxGraphQLVariables {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			*n++
			f(k)
			jsonLeaves(e, n, f)
		}
	case []any:
		for _, e := range x {
			jsonLeaves(e, n, f)
		}
	case string:
		*n++
		f(x)
	}
}
