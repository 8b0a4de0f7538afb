package config

import "time"

// The edge features of issue 21: response caching, compression, rewrites,
// header edits and mirroring. Each route names what it uses; the policies
// live at the top level (Config.Caches, Config.Compression).

// Cache is a response cache policy (Config.Caches), named by Route.Cache:
// an RFC 9111 shared cache (docs/cache.md). A policy whose settings are
// unchanged across a reload keeps its entries.
type Cache struct {
	// Store is where answers are kept: memory (the default) or redis (the
	// top-level redis section, shared by every instance).
	Store string `yaml:"store"`
	// MaxSize bounds a memory store in bytes; under pressure the entries
	// least likely to be asked again are evicted (W-TinyLFU). Default
	// DefaultCacheMaxSize. A redis store is bounded by Redis's maxmemory.
	MaxSize Size `yaml:"max_size"`
	// MaxObjectSize is the largest body stored; a larger answer streams to
	// the client and is not stored. Default DefaultCacheMaxObjectSize, or
	// max_size when that is smaller.
	MaxObjectSize Size `yaml:"max_object_size"`
	// MaxStale caps the stale-while-revalidate and stale-if-error windows
	// an answer asks for, and is how long a stale answer with a validator
	// (ETag, Last-Modified) is kept to be revalidated. Default
	// DefaultCacheMaxStale.
	MaxStale Duration `yaml:"max_stale"`
	// CoalesceTimeout bounds how long concurrent misses for one key wait
	// for the first to bring the answer; then they go upstream
	// themselves. Default DefaultCacheCoalesceTimeout.
	CoalesceTimeout Duration `yaml:"coalesce_timeout"`
}

// Defaults of a cache policy.
const (
	DefaultCacheStore           = "memory"
	DefaultCacheMaxSize         = Size(256 << 20)
	DefaultCacheMaxObjectSize   = Size(8 << 20)
	DefaultCacheMaxStale        = time.Hour
	DefaultCacheCoalesceTimeout = 5 * time.Second
)

func (c *Cache) applyDefaults() {
	orDefault(&c.Store, DefaultCacheStore)
	orDefault(&c.MaxSize, DefaultCacheMaxSize)
	if c.MaxObjectSize == 0 && c.MaxSize < DefaultCacheMaxObjectSize {
		c.MaxObjectSize = c.MaxSize // a small store: the default follows it down
	}
	orDefault(&c.MaxObjectSize, DefaultCacheMaxObjectSize)
	orDefault(&c.MaxStale, Duration(DefaultCacheMaxStale))
	orDefault(&c.CoalesceTimeout, Duration(DefaultCacheCoalesceTimeout))
}

// Compression tunes response compression for routes with compress: true.
type Compression struct {
	// MinSize is the smallest body compressed.
	MinSize Size `yaml:"min_size"`
	// Types are the compressible media types.
	Types []string `yaml:"types"`
}

// Rewrite changes the request path before it is forwarded. At most one
// of StripPrefix, ReplacePrefix and Regex.
type Rewrite struct {
	// StripPrefix removes this prefix from the path.
	StripPrefix string `yaml:"strip_prefix"`
	// ReplacePrefix replaces the prefix From with To.
	ReplacePrefix *ReplacePrefix `yaml:"replace_prefix"`
	// Regex replaces the path matching Pattern with Replacement.
	Regex *RegexRewrite `yaml:"regex"`
}

// ReplacePrefix replaces a path prefix.
type ReplacePrefix struct {
	// From is the prefix replaced.
	From string `yaml:"from"`
	// To replaces it.
	To string `yaml:"to"`
}

// RegexRewrite rewrites the path with a regular expression.
type RegexRewrite struct {
	// Pattern is an RE2 regular expression matched against the path.
	Pattern string `yaml:"pattern"`
	// Replacement is the new path; $1 and ${name} name groups.
	Replacement string `yaml:"replacement"`
}

// HeaderEdits changes the header fields of a request or a response.
type HeaderEdits struct {
	// Set replaces every field of each name with the given value.
	Set map[string]string `yaml:"set"`
	// Add appends a field of each name with the given value.
	Add map[string]string `yaml:"add"`
	// Remove deletes every field of each name.
	Remove []string `yaml:"remove"`
}

// Mirror copies a share of a route's requests to another upstream.
type Mirror struct {
	// Upstream receives the copies; its answers are discarded.
	Upstream string `yaml:"upstream"`
	// Percent of the route's requests copied, 0 to 100.
	Percent float64 `yaml:"percent"`
}
