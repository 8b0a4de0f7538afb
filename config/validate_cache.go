package config

import "strconv"

// caches checks the cache policies and the routes' use of them (issue 21).
func (v *validator) caches() {
	for _, name := range sortedKeys(v.c.Caches) {
		v.errorf("caches."+name, "response caching is not supported yet")
	}
	for i, r := range v.c.Routes {
		if r != nil && r.Cache != "" {
			v.fieldf("routes["+strconv.Itoa(i)+"]", "cache", "response caching is not supported yet")
		}
	}
}
