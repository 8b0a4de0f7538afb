package waf

import (
	"strings"

	"github.com/corazawaf/coraza/v3/collection"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// The expansion pass is a Coraza action, rampart_expand, run by rule
// 9500000 at the start of phase 2, before any CRS rule of that phase and
// after the body processor filled ARGS_POST, FILES and XML. It adds the
// values the CRS does not see, or sees only as sent, to ARGS_PATH, which
// Coraza keeps empty and counts in ARGS and ARGS_NAMES: so the whole CRS
// (libinjection, the SQLi, XSS, command, traversal and file rules) and
// Rampart's own rules inspect them as arguments, with transformations,
// scores, exclusions and audit events as for any argument. One pass in Go
// costs a scan per value; a transformation or operator would instead run
// once per rule and target, hundreds of times per value.
//
// The names of the added arguments say where a value came from:
//   - an argument's decoded form keeps the argument's name (so that an
//     exclusion of ARGS:name covers it), a decoded argument name is added
//     as a name;
//   - cookie:NAME, header:NAME, path, file, xml, graphql otherwise.
func init() {
	plugins.RegisterAction("rampart_expand", func() plugintypes.Action { return new(expandAction) })
}

// Places the expansion pass reads, by group.
const (
	expandDecode  = 1 << iota // decoded forms of ARGS, ARGS_NAMES, cookies, XML text
	expandHeaders             // non-standard request headers
	expandPath                // path segments and matrix parameters
	expandUploads             // multipart field names and file names
	expandGraphQL             // GraphQL string arguments and variables
)

// expandAction is rampart_expand:GROUP/GROUP...
type expandAction struct {
	groups int
}

func (a *expandAction) Init(_ plugintypes.RuleMetadata, data string) error {
	for _, g := range strings.Split(data, "/") {
		switch g {
		case "decode":
			a.groups |= expandDecode
		case "headers":
			a.groups |= expandHeaders
		case "path":
			a.groups |= expandPath
		case "uploads":
			a.groups |= expandUploads
		case "graphql":
			a.groups |= expandGraphQL
		}
	}
	return nil
}

func (a *expandAction) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

func (a *expandAction) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	vars := tx.Variables()
	out := vars.ArgsPath()
	var e expander
	decode := a.groups&expandDecode != 0
	graphql := a.groups&expandGraphQL != 0
	put := func(key, v string) { out.Add(key, v) }
	// add puts a value the CRS never saw in its own form: as is when it
	// may carry a payload, and its decoded forms.
	add := func(key, v string) {
		if interesting(v) {
			if e.forms >= maxExpandForms || e.bytes+len(v) > maxExpandBytes {
				e.over = true
				return
			}
			e.forms++
			e.bytes += len(v)
			put(key, v)
		}
		e.expand(v, func(f string) { put(key, f) })
	}

	for _, col := range [...]collection.Map{vars.ArgsGet(), vars.ArgsPost()} {
		for _, m := range col.FindAll() {
			k, v := m.Key(), m.Value()
			// A GraphQL document the graphql group reads is not decoded
			// whole: its strings are, one by one (graphqlArgs). Undoing
			// the escapes of the whole document would join its strings
			// to the text around them, and show the CRS a document that
			// no longer parses where a quote ends a string.
			if decode && !(graphql && graphqlDoc(k, v)) {
				e.expand(v, func(f string) { put(k, f) })
				e.expand(k, func(f string) { out.Add(f, "") })
			}
			if graphql {
				graphqlArgs(k, v, add)
			}
		}
	}
	if decode {
		for _, m := range vars.RequestCookies().FindAll() {
			k := "cookie:" + m.Key()
			e.expand(m.Value(), func(f string) { out.Add(k, f) })
		}
		xml := vars.XML()
		for _, v := range xml.Get("/*") {
			e.expand(v, func(f string) { put("xml", f) })
		}
		for _, v := range xml.Get("//@*") {
			add("xml", v)
		}
	}
	if a.groups&expandHeaders != 0 {
		for _, m := range vars.RequestHeaders().FindAll() {
			if k := strings.ToLower(m.Key()); !standardHeader(k) {
				add("header:"+k, m.Value())
			}
		}
	}
	if a.groups&expandPath != 0 {
		pathSegments(vars.RequestURIRaw().Get(), add)
	}
	if a.groups&expandUploads != 0 {
		for _, m := range vars.Files().FindAll() {
			add("file", m.Value())
		}
		for _, m := range vars.FilesNames().FindAll() {
			add("file", m.Value())
		}
	}
	if e.over {
		vars.TX().Set("rampart_expand_over", []string{"1"})
	}

}

// interesting reports whether v has a byte that a payload needs (quotes,
// brackets, separators, slashes, spaces, escapes): a value of letters,
// digits and - _ . : @ + , only (ids, tokens, versions, addresses) cannot
// carry one, and is not worth an argument.
func interesting(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '+' || c == ',':
		default:
			return true
		}
	}
	return false
}

// standardHeader reports whether the header (lower case) is one whose
// syntax is fixed by a specification, that the CRS inspects itself, or that carries
// credentials that must not be copied into audit events (Authorization).
func standardHeader(name string) bool {
	switch name {
	case "host", "user-agent", "referer", "accept", "accept-encoding", "accept-language", "accept-charset",
		"content-type", "content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive",
		"cookie", "cache-control", "pragma", "if-modified-since", "if-unmodified-since", "if-none-match",
		"if-match", "if-range", "range", "te", "trailer", "upgrade", "upgrade-insecure-requests", "dnt",
		"origin", "expect", "priority", "authorization", "proxy-authorization", "x-crs-test",
		// Structured fields of IETF and W3C specifications: trace context
		// (W3C), digests (RFC 9530), HTTP message signatures (RFC 9421).
		"traceparent", "tracestate", "baggage", "content-digest", "repr-digest", "want-content-digest",
		"want-repr-digest", "digest", "signature", "signature-input":
		return true
	}
	return strings.HasPrefix(name, "sec-")
}

// pathSegments calls add with each segment of the request path as the
// application decodes it, and with each matrix parameter's value
// (/a;jsessionid=x;p=v/b).
func pathSegments(uri string, add func(k, v string)) {
	if i := strings.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	if i := strings.Index(uri, "://"); i >= 0 { // absolute form
		uri = uri[i+3:]
		if j := strings.IndexByte(uri, '/'); j >= 0 {
			uri = uri[j:]
		} else {
			return
		}
	}
	for len(uri) > 0 {
		seg := uri
		if i := strings.IndexByte(uri, '/'); i >= 0 {
			seg, uri = uri[:i], uri[i+1:]
		} else {
			uri = ""
		}
		// The segment whole (a ';' may belong to an entity or a payload),
		// then each matrix parameter's value.
		pathValue(seg, add)
		if strings.IndexByte(seg, ';') < 0 {
			continue
		}
		for _, p := range strings.Split(seg, ";")[1:] {
			if k := strings.IndexByte(p, '='); k >= 0 {
				pathValue(p[k+1:], add)
			}
		}
	}
}

// pathValue adds a path segment or matrix parameter value as the
// application decodes it.
func pathValue(p string, add func(k, v string)) {
	if p == "" {
		return
	}
	// A path does not read '+' as a space: the segment with '+' kept is
	// what the application sees, the one with spaces what a form decoder
	// would.
	if d, ok := decodeURLKeepPlus(p, 0); ok && d != p {
		add("path", d)
	}
	if d, ok := decodeURL(p, 0); ok {
		p = d
	}
	add("path", p)
}
