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
// Without this section, routes with compress: true use the defaults below.
type Compression struct {
	// MinSize is the smallest body compressed, when its length is known
	// (a body of unknown length is compressed). Default 1KiB; zero means
	// the default.
	MinSize Size `yaml:"min_size"`
	// Types are the media types compressed (parameters such as charset
	// ignored, case-insensitive); "text/*" matches every text type and
	// "+json" / "+xml" every type with that suffix. Empty means the
	// default list (DefaultCompressTypes): text/*, application/json,
	// +json, application/javascript, application/ecmascript,
	// application/x-javascript, application/xml, +xml,
	// application/x-ndjson, application/wasm, image/svg+xml, image/x-icon,
	// image/bmp, font/ttf, font/otf, application/vnd.ms-fontobject.
	// text/event-stream and application/grpc are never compressed.
	Types []string `yaml:"types"`
	// Encodings are the content codings offered, in the proxy's order of
	// preference among those the client accepts with the same q-value:
	// zstd, br, gzip. Empty means all three in that order.
	Encodings []string `yaml:"encodings"`
	// GzipLevel is gzip's level, 1 (fastest) to 9 (smallest). Default 5;
	// zero means the default.
	GzipLevel int `yaml:"gzip_level"`
	// BrotliLevel is brotli's quality, 1 (fastest) to 11 (smallest).
	// Default 4; zero means the default.
	BrotliLevel int `yaml:"brotli_level"`
	// ZstdLevel is zstd's level, 1 (fastest) to 22, mapped by
	// klauspost/compress to its four speeds (1-2: fastest, 3-5: default,
	// 6-9: better, 10 and up: best). Default 3; zero means the default.
	ZstdLevel int `yaml:"zstd_level"`
}

// The content codings of Compression.Encodings.
const (
	EncodingGzip   = "gzip"
	EncodingBrotli = "br"
	EncodingZstd   = "zstd"
)

// Compression defaults.
const (
	DefaultCompressMinSize = 1 << 10
	DefaultGzipLevel       = 5
	DefaultBrotliLevel     = 4
	DefaultZstdLevel       = 3
)

// DefaultCompressTypes are the media types compressed unless
// compression.types says otherwise: text, and the structured formats
// served as text (JSON, XML, JavaScript, SVG, WebAssembly, fonts without
// their own compression).
var DefaultCompressTypes = []string{
	"text/*", "application/json", "+json", "application/javascript", "application/ecmascript",
	"application/x-javascript", "application/xml", "+xml", "application/x-ndjson", "application/wasm",
	"image/svg+xml", "image/x-icon", "image/bmp", "font/ttf", "font/otf", "application/vnd.ms-fontobject",
}

// DefaultEncodings are the content codings offered, in order of preference.
var DefaultEncodings = []string{EncodingZstd, EncodingBrotli, EncodingGzip}

// Rewrite changes the request path before it is forwarded, after the WAF
// inspected it as the client sent it (routing too matched the original).
// The query string is kept. Exactly one of StripPrefix, ReplacePrefix and
// Regex.
type Rewrite struct {
	// StripPrefix removes this prefix from the path, at a segment
	// boundary ("/static" turns "/static/a.css" into "/a.css" and
	// "/static" into "/", and leaves "/staticfile" alone). It must start
	// with "/".
	StripPrefix string `yaml:"strip_prefix"`
	// ReplacePrefix replaces the prefix From with To, at a segment
	// boundary as for StripPrefix.
	ReplacePrefix *ReplacePrefix `yaml:"replace_prefix"`
	// Regex replaces the path matching Pattern with Replacement.
	Regex *RegexRewrite `yaml:"regex"`
}

// ReplacePrefix replaces a path prefix.
type ReplacePrefix struct {
	// From is the prefix replaced; it must start with "/".
	From string `yaml:"from"`
	// To replaces it; it must start with "/".
	To string `yaml:"to"`
}

// RegexRewrite rewrites the path with a regular expression.
type RegexRewrite struct {
	// Pattern is an RE2 regular expression matched against the path (the
	// path only, never the query). A path it does not match is forwarded
	// unchanged.
	Pattern string `yaml:"pattern"`
	// Replacement is the new path; $1 and ${name} name groups (Go's
	// regexp.Expand). The result must start with "/"; a request whose
	// rewritten path is not a valid origin-form path is answered 400.
	Replacement string `yaml:"replacement"`
}

// HeaderEdits changes the header fields of a request or a response. The
// order is remove, then set, then add. Fields the proxy owns cannot be
// edited (config.ProtectedRequestHeader, ProtectedResponseHeader).
type HeaderEdits struct {
	// Set replaces every field of each name with the given value.
	Set map[string]string `yaml:"set"`
	// Add appends a field of each name with the given value.
	Add map[string]string `yaml:"add"`
	// Remove deletes every field of each name.
	Remove []string `yaml:"remove"`
}

// Mirror copies a share of a route's requests to another upstream. The
// copies go through a bounded queue to a few workers; their answers are
// discarded, and a copy that finds the queue full is dropped (counted in
// rampart_mirror_requests_total), so that a slow or dead mirror never
// delays or fails the client's request.
type Mirror struct {
	// Upstream receives the copies (an HTTP/1.1 upstream); its answers are
	// discarded.
	Upstream string `yaml:"upstream"`
	// Percent of the route's requests copied, 0 to 100 (fractions
	// allowed). Zero copies nothing.
	Percent float64 `yaml:"percent"`
	// MaxBodySize is the largest request body copied. A request with a
	// larger body, or a body that streams (beyond 64 KiB, chunked, or from
	// an HTTP/2 client), is not mirrored at all (counted as skipped): a
	// copy without its body would be another request. Default 64KiB; zero means
	// the default.
	MaxBodySize Size `yaml:"max_body_size"`
}

// Mirror defaults and bounds.
const (
	DefaultMirrorMaxBodySize = 64 << 10
	// MirrorQueue is how many copies wait for a mirror worker at most;
	// MirrorWorkers how many copies are in flight at once (per process).
	MirrorQueue   = 256
	MirrorWorkers = 4
)

// applyEdgeDefaults fills the defaults of the compression section and of
// the routes' mirrors (ApplyDefaults).
func (c *Config) applyEdgeDefaults() {
	if co := c.Compression; co != nil {
		orDefault(&co.MinSize, DefaultCompressMinSize)
		if len(co.Types) == 0 {
			co.Types = append([]string(nil), DefaultCompressTypes...)
		}
		if len(co.Encodings) == 0 {
			co.Encodings = append([]string(nil), DefaultEncodings...)
		}
		orDefault(&co.GzipLevel, DefaultGzipLevel)
		orDefault(&co.BrotliLevel, DefaultBrotliLevel)
		orDefault(&co.ZstdLevel, DefaultZstdLevel)
	}
	for _, r := range c.Routes {
		if r != nil && r.Mirror != nil {
			orDefault(&r.Mirror.MaxBodySize, DefaultMirrorMaxBodySize)
		}
	}
}
