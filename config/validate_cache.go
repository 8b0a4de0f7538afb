package config

// maxCacheObject bounds max_object_size: Redis keeps a value of 512 MiB
// at most, and a body held in memory while it is stored should not
// approach that anyway.
const maxCacheObject = Size(512 << 20)

// caches checks the cache policies and the routes' use of them (issue 21).
func (v *validator) caches() {
	for _, name := range sortedKeys(v.c.Caches) {
		p := "caches." + name
		c := v.c.Caches[name]
		if c == nil {
			continue // ApplyDefaults made it an empty policy
		}
		switch c.Store {
		case StoreMemory:
		case StoreRedis:
			if v.c.Redis == nil {
				v.errorf(p+".store", `"redis" needs the top-level redis section`)
			}
		default:
			v.errorf(p+".store", "%q must be memory or redis", c.Store)
		}
		if c.MaxSize < 0 {
			v.errorf(p+".max_size", "%d must not be negative", c.MaxSize)
		}
		switch {
		case c.MaxObjectSize < 0:
			v.errorf(p+".max_object_size", "%d must not be negative", c.MaxObjectSize)
		case c.MaxObjectSize > maxCacheObject:
			v.errorf(p+".max_object_size", "%d is more than 512MiB", c.MaxObjectSize)
		case c.Store == StoreMemory && c.MaxObjectSize > c.MaxSize:
			v.errorf(p+".max_object_size", "%d is more than max_size (%d)", c.MaxObjectSize, c.MaxSize)
		}
		if c.MaxStale < 0 {
			v.errorf(p+".max_stale", "%s must not be negative", c.MaxStale.Std())
		}
		if c.CoalesceTimeout < 0 {
			v.errorf(p+".coalesce_timeout", "%s must not be negative", c.CoalesceTimeout.Std())
		}
	}
	for i, r := range v.c.Routes {
		if r == nil || r.Cache == "" {
			continue
		}
		if _, ok := v.c.Caches[r.Cache]; !ok {
			v.routeErrorf(i, r, "cache", "cache policy %q is not defined", r.Cache)
		}
	}
}
