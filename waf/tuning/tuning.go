// Package tuning reads a WAF audit log (JSON lines of waf.Event) and
// summarizes which rules matched, by route, path and parameter, and
// proposes the exclusions (config.Exclusion, printed as Rampart's YAML)
// that would stop those matches: what an operator needs to remove false
// positives found while a policy runs in detect mode or blocks real
// users. `rampart waf report` is its command line.
package tuning

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

// MaxLine bounds one audit log line; longer lines are counted as bad and
// skipped.
const MaxLine = 1 << 20

// Filter selects the events summarized.
type Filter struct {
	// Route keeps only this route's events; empty keeps all.
	Route string
	// Blocked keeps only the blocked events.
	Blocked bool
	// PathDepth, when above 0, cuts paths to their first PathDepth
	// segments ("/api/v1/orders/17" at 2 is "/api/v1"), so that one
	// exclusion covers paths that differ in an id.
	PathDepth int
}

// Group is the matches of one rule on one route, path and target.
type Group struct {
	Policy string
	Route  string
	RuleID int
	Msg    string
	Path   string
	// Target is the variable that matched ("ARGS:q"); "" when the rule
	// named none.
	Target  string
	Methods []string
	Hits    int
	// Example is the matched data of one hit.
	Example string
}

// Summary is what a log holds.
type Summary struct {
	Events, Blocked, Detected int
	// BadLines are lines that are not events.
	BadLines int
	// Routes are the events by route, sorted by name.
	Routes []RouteCount
	// Groups are sorted by policy, route, hits (most first), rule, path
	// and target.
	Groups []Group
	// NotExcludable are the rules that matched but are never proposed for
	// an exclusion (see Excludable), with their hits.
	NotExcludable map[int]int
}

// RouteCount is a route's events.
type RouteCount struct {
	Route, Policy             string
	Events, Blocked, Detected int
}

// Read summarizes the audit log r.
func Read(r io.Reader, f Filter) (*Summary, error) {
	s := &Summary{NotExcludable: map[int]int{}}
	type key struct {
		policy, route, path, target string
		rule                        int
	}
	groups := map[key]*Group{}
	routes := map[string]*RouteCount{}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			var e waf.Event
			if len(line) > MaxLine || json.Unmarshal(line, &e) != nil || e.Route == "" && e.Policy == "" {
				s.BadLines++
			} else if (f.Route == "" || e.Route == f.Route) && (!f.Blocked || e.Action == waf.ActionBlocked.String()) {
				s.Events++
				rc := routes[e.Route]
				if rc == nil {
					rc = &RouteCount{Route: e.Route, Policy: e.Policy}
					routes[e.Route] = rc
				}
				rc.Events++
				if e.Action == waf.ActionBlocked.String() {
					s.Blocked++
					rc.Blocked++
				} else {
					s.Detected++
					rc.Detected++
				}
				p := eventPath(e.URI, f.PathDepth)
				for _, m := range e.Rules {
					if !Scoring(m.ID) {
						continue
					}
					if !Excludable(m.ID) {
						s.NotExcludable[m.ID]++
						continue
					}
					targets := m.Targets
					if len(targets) == 0 {
						targets = []string{m.Target}
					}
					for _, t := range targets {
						k := key{e.Policy, e.Route, p, t, m.ID}
						g := groups[k]
						if g == nil {
							g = &Group{Policy: e.Policy, Route: e.Route, RuleID: m.ID, Msg: m.Msg, Path: p, Target: t}
							if t == m.Target {
								g.Example = m.Data
							}
							groups[k] = g
						}
						g.Hits++
						if m := strings.ToUpper(e.Method); m != "" && !slices.Contains(g.Methods, m) {
							g.Methods = append(g.Methods, m)
						}
					}
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	for _, rc := range routes {
		s.Routes = append(s.Routes, *rc)
	}
	sort.Slice(s.Routes, func(i, j int) bool { return s.Routes[i].Route < s.Routes[j].Route })
	for _, g := range groups {
		slices.Sort(g.Methods)
		s.Groups = append(s.Groups, *g)
	}
	sort.Slice(s.Groups, func(i, j int) bool {
		a, b := &s.Groups[i], &s.Groups[j]
		switch {
		case a.Policy != b.Policy:
			return a.Policy < b.Policy
		case a.Route != b.Route:
			return a.Route < b.Route
		case a.Hits != b.Hits:
			return a.Hits > b.Hits
		case a.RuleID != b.RuleID:
			return a.RuleID < b.RuleID
		case a.Path != b.Path:
			return a.Path < b.Path
		}
		return a.Target < b.Target
	})
	return s, nil
}

// readLine returns the next line without its newline; a line longer than
// MaxLine is returned cut to MaxLine+1 bytes, the rest skipped.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line) <= MaxLine {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(line) > MaxLine+1 {
			line = line[:MaxLine+1]
		}
		return trimNewline(line), err
	}
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// eventPath returns the path of uri (no query), cut to depth segments
// when depth > 0.
func eventPath(uri string, depth int) string {
	p := uri
	if k := strings.IndexAny(p, "?#"); k >= 0 {
		p = p[:k]
	}
	if strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://") {
		if u, err := url.Parse(p); err == nil {
			p = u.Path
		}
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u // REQUEST_FILENAME, which path_prefix is compared with, is decoded
	}
	if p == "" {
		p = "/"
	}
	if depth > 0 {
		segs := strings.SplitAfter(p, "/")
		if len(segs) > depth+1 {
			p = strings.TrimSuffix(strings.Join(segs[:depth+1], ""), "/")
		}
	}
	return p
}

// Scoring reports whether id is a detection rule, not one of the CRS's
// evaluation and correlation rules (949xxx, 959xxx, 980xxx), which match
// because others did.
func Scoring(id int) bool {
	switch id / 1000 {
	case 949, 959, 980:
		return false
	}
	return true
}

// Excludable reports whether an exclusion of id is ever proposed. The
// body processing rules (200000-200099: the body could not be parsed or
// has too many arguments) are not: a request the engine cannot read must
// be fixed by its client, and excluding them lets anything through
// uninspected. The policy refuses some of them outright (config.Exclusion).
func Excludable(id int) bool {
	return id < 200000 || id > 200099
}

// targetVariables are the variables an exclusion may name with a key:
// collections whose members a rule inspects one by one.
var targetVariables = []string{"ARGS", "ARGS_GET", "ARGS_POST", "ARGS_NAMES", "ARGS_GET_NAMES", "ARGS_POST_NAMES",
	"REQUEST_HEADERS", "REQUEST_HEADERS_NAMES", "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES",
	"FILES", "FILES_NAMES", "XML"}

// exclusionTarget returns the target an exclusion names for a match on
// target: "" when the whole rule must be excluded (a variable without
// members, such as REQUEST_FILENAME, or none); ok is false when no
// exclusion may be proposed, because the member's name (attacker input:
// an argument, header or cookie name) holds a character outside safeKey.
func exclusionTarget(target string) (_ string, ok bool) {
	v, key, found := strings.Cut(target, ":")
	if !found || key == "" {
		return "", true
	}
	v = strings.ToUpper(v)
	if v == "REQUEST_XML" {
		// The engine reports XML matches as REQUEST_XML:/*, but only
		// XML:/* (the whole document's text) removes them.
		v = "XML"
	}
	if !slices.Contains(targetVariables, v) {
		return "", true
	}
	if !safeKey(key) {
		return "", false
	}
	if strings.HasPrefix(v, "ARGS") {
		if rx := indexPattern(key); rx != "" {
			return v + ":" + rx, true
		}
	}
	return v + ":" + key, true
}

// safeKey reports whether key may be written into an exclusion: the
// policy writes targets into SecLang actions as they are, so a name with a
// comma, quote, semicolon, pipe, space or backslash would change the rule
// (an argument named "a,ctl:ruleEngine=Off" is an injection, not a
// target). Letters, digits and "_-.$@:/*[]" are safe.
func safeKey(key string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(isAlnum(c) || strings.IndexByte("_-.$@:/*[]", c) >= 0) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// indexPattern returns a regular expression target key (/^...$/) that
// matches key with any number in place of each all-digit segment
// ("json.items.3.name" gives /^json\.items\.\d+\.name$/): the arguments of
// the elements of a JSON array, of which a request may send any number.
// It returns "" for a key without such a segment.
func indexPattern(key string) string {
	segs := strings.Split(key, ".")
	found := false
	for i, s := range segs {
		if s != "" && strings.Trim(s, "0123456789") == "" {
			segs[i], found = `\d+`, true
		} else {
			segs[i] = regexp.QuoteMeta(s)
		}
	}
	if !found {
		return ""
	}
	return "/^" + strings.Join(segs, `\.`) + "$/"
}

// Proposal is an exclusion for one policy.
type Proposal struct {
	Policy    string
	Exclusion config.Exclusion
	Hits      int
}

// Propose returns the exclusions that would stop the matches of groups:
// one per policy, path, methods and target, naming every rule that
// matched there; exclusions of the same policy, path, methods and rules
// are then merged into one with their targets. They are narrow on
// purpose: the path the rule matched on, its methods and the parameter.
//
// Groups whose target name no exclusion may carry (see safeKey) are not
// proposed: they are returned as unsafe, to be listed for the operator.
func Propose(groups []Group) (_ []Proposal, unsafe []Group) {
	type key struct{ policy, path, methods, target string }
	byKey := map[key]*Proposal{}
	var order []key
	for _, g := range groups {
		t, ok := exclusionTarget(g.Target)
		if !ok {
			unsafe = append(unsafe, g)
			continue
		}
		k := key{g.Policy, g.Path, strings.Join(g.Methods, ","), t}
		p := byKey[k]
		if p == nil {
			p = &Proposal{Policy: g.Policy, Exclusion: config.Exclusion{PathPrefix: g.Path, Methods: g.Methods}}
			if k.target != "" {
				p.Exclusion.Targets = []string{k.target}
			}
			byKey[k] = p
			order = append(order, k)
		}
		if !slices.Contains(p.Exclusion.RuleIDs, g.RuleID) {
			p.Exclusion.RuleIDs = append(p.Exclusion.RuleIDs, g.RuleID)
		}
		p.Hits += g.Hits
	}
	// A whole-rule exclusion on a path makes narrower ones of the same
	// rules and methods there redundant.
	var out []Proposal
	type merge struct{ policy, path, methods, rules string }
	merged := map[merge]int{}
	for _, k := range order {
		p := byKey[k]
		slices.Sort(p.Exclusion.RuleIDs)
		m := merge{k.policy, k.path, k.methods, fmt.Sprint(p.Exclusion.RuleIDs)}
		if i, ok := merged[m]; ok && len(p.Exclusion.Targets) > 0 && len(out[i].Exclusion.Targets) > 0 {
			out[i].Exclusion.Targets = append(out[i].Exclusion.Targets, p.Exclusion.Targets...)
			out[i].Hits += p.Hits
			continue
		}
		merged[m] = len(out)
		out = append(out, *p)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Policy != out[j].Policy {
			return out[i].Policy < out[j].Policy
		}
		return out[i].Exclusion.PathPrefix < out[j].Exclusion.PathPrefix
	})
	return out, unsafe
}

// WriteYAML writes proposals as the waf section of a Rampart
// configuration: waf.POLICY.exclusions.
func WriteYAML(w io.Writer, proposals []Proposal) error {
	var b strings.Builder
	b.WriteString("waf:\n")
	policy := ""
	for i, p := range proposals {
		if i == 0 || p.Policy != policy {
			policy = p.Policy
			if k := yamlKey(policy); len(k) <= maxImplicitKey {
				fmt.Fprintf(&b, "  %s:\n    exclusions:\n", k)
			} else {
				// YAML allows an implicit key of at most 1024
				// characters; a longer one needs the explicit form.
				fmt.Fprintf(&b, "  ? %s\n  :\n    exclusions:\n", k)
			}
		}
		e := &p.Exclusion
		ids := make([]string, len(e.RuleIDs))
		for i, id := range e.RuleIDs {
			ids[i] = fmt.Sprint(id)
		}
		fmt.Fprintf(&b, "      - rule_ids: [%s]  # %d hit(s)\n", strings.Join(ids, ", "), p.Hits)
		if e.PathPrefix != "" {
			fmt.Fprintf(&b, "        path_prefix: %s\n", yamlString(e.PathPrefix))
		}
		if len(e.Methods) > 0 {
			ms := make([]string, len(e.Methods))
			for i, m := range e.Methods {
				ms[i] = yamlString(m)
			}
			fmt.Fprintf(&b, "        methods: [%s]\n", strings.Join(ms, ", "))
		}
		if len(e.Targets) > 0 {
			ts := make([]string, len(e.Targets))
			for i, t := range e.Targets {
				ts[i] = yamlString(t)
			}
			fmt.Fprintf(&b, "        targets: [%s]\n", strings.Join(ts, ", "))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// yamlString quotes s as a YAML double-quoted scalar, escaping what YAML
// does not allow there or would read otherwise: quotes, backslashes,
// control characters, line and paragraph separators, the byte order mark.
// Bytes that are not UTF-8 become U+FFFD (a YAML document is text).
func yamlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == 0x2028 || r == 0x2029 || r == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// maxImplicitKey is the longest key, in bytes as written, that WriteYAML
// writes as an implicit key (YAML's limit is 1024 characters).
const maxImplicitKey = 1000

// yamlKey returns s plain when it is a simple key, else quoted.
func yamlKey(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return yamlString(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}
