package config

import (
	"reflect"
	"strings"
	"sync"
)

// An unknown field is most often a typo ("matchh", "adress"); naming the
// field meant saves a trip to the docs.

// yamlFields maps a struct's Go name as yaml.v3 prints it ("config.Route")
// to its YAML field names. Built once, from Config down.
var yamlFields = sync.OnceValue(func() map[string][]string {
	m := map[string][]string{}
	collectFields(reflect.TypeFor[Config](), m)
	return m
})

// collectFields adds t and every struct type reachable from it to m.
func collectFields(t reflect.Type, m map[string][]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || m[t.String()] != nil {
		return
	}
	m[t.String()] = []string{} // before recursing: marks t as seen
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		m[t.String()] = append(m[t.String()], name)
		collectFields(f.Type, m)
	}
}

// suggestField returns the field of goType closest to name, or "" when
// none is close enough to be a typo of it.
func suggestField(goType, name string) string {
	if len(name) > 64 {
		return ""
	}
	best, bestDist := "", 3 // at most 2 edits
	for _, f := range yamlFields()[goType] {
		if d := editDistance(strings.ToLower(name), f); d < bestDist && d < len(f) {
			best, bestDist = f, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
