package config

import (
	"fmt"
	"slices"
)

// Warnings are findings that do not make the configuration invalid but
// are probably not what was meant: a configuration that routes nothing,
// or a listener that no route is bound to (it answers every request 404).
// `rampart validate` prints them; run logs them.
func (c *Config) Warnings() []string {
	var out []string
	if len(c.Listeners) == 0 {
		out = append(out, "no listeners: nothing is served")
	}
	if len(c.Routes) == 0 {
		return append(out, "no routes: every request is answered 404")
	}
	for _, name := range sortedKeys(c.Listeners) {
		bound := slices.ContainsFunc(c.Routes, func(r *Route) bool {
			return r != nil && (len(r.Listeners) == 0 || slices.Contains(r.Listeners, name))
		})
		if !bound {
			out = append(out, fmt.Sprintf("listeners.%s: no route is bound to it: every request is answered 404", name))
		}
	}
	return out
}
