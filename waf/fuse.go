package waf

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Fused transformation chains.
//
// Coraza runs a rule's transformations (t:urlDecodeUni,t:htmlEntityDecode,
// ...) one at a time and stores every intermediate result in a per-phase
// cache map, keyed by the value's position in the variable's list. For a
// collection (ARGS, REQUEST_HEADERS) that position follows Go's randomized
// map order, so the cache almost never hits (coraza issue 1681), yet every
// step of every rule on every value pays a map insert and a lookup per
// prefix. On a 16 KiB JSON POST (418 values) those map operations were a
// third of the CPU, more than the transformations themselves.
//
// So each CRS rule's chain is fused into one transformation: the action
// rampart_fuse, appended to every SecRule of the embedded CRS (crsFS),
// runs after the rule's own t: actions and the SecDefaultAction ones have
// been added, and replaces the chain with a single function that applies
// the same functions in the same order with the same error handling. The
// operator sees the same value, so MATCHED_VAR, captures and chains are
// unchanged; what changes is one cache insert per value instead of one per
// step. Rules with multiMatch, whose operator runs after each step, and
// chains of fewer than two steps are left alone.
//
// Coraza does not export a rule's transformations, so the action reads
// them with reflect from the *corazawaf.Rule it is given. When that field
// is not what this code expects (another Coraza version), the chain is
// left as it was: slower, never different.

// fuseAction is the name of the action appended to the CRS's rules.
const fuseAction = "rampart_fuse"

func init() {
	plugins.RegisterAction(fuseAction, func() plugintypes.Action { return fuse{} })
}

// fuse is the action that fuses its rule's transformation chain; it also
// gives the rule memoized msg and logdata macros (logdata.go).
type fuse struct{}

// chainRule is what fuse needs of a *corazawaf.Rule besides its fields.
type chainRule interface {
	AddTransformation(name string, t plugintypes.Transformation) error
	ClearTransformations()
}

func (fuse) Init(rm plugintypes.RuleMetadata, data string) error {
	if data != "" {
		return errors.New(fuseAction + ": takes no argument")
	}
	r, ok := rm.(chainRule)
	if !ok {
		return nil
	}
	memoizeRuleMacros(rm) // logdata.go
	steps, names, ok := ruleTransformations(rm)
	if !ok || len(steps) < 2 {
		return nil
	}
	r.ClearTransformations()
	if err := r.AddTransformation(strings.Join(names, ","), chain(steps).apply); err != nil {
		return err
	}
	// Rampart's Coraza patch (item 15) skips the values the steps leave
	// unchanged when the rule's prefilter rules them out; stock Coraza has
	// no such method.
	if s, ok := rm.(stepsRule); ok {
		s.SetTransformationSteps(steps)
	}
	return nil
}

// stepsRule is a rule of the patched engine, told its fused chain's steps.
type stepsRule interface {
	SetTransformationSteps([]plugintypes.Transformation)
}

func (fuse) Evaluate(plugintypes.RuleMetadata, plugintypes.TransactionState) {}

// NoEvaluate tells the Coraza patch that Evaluate does nothing, so that a
// rule with fuse can still be evaluated from its TX value alone (item 9 of
// corazapatch/README.md: the paranoia-level skip rules).
func (fuse) NoEvaluate() bool { return true }

// Type is non-disruptive, not metadata: Coraza initializes metadata
// actions before all others, and fuse must run after the t: actions.
func (fuse) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

var transformationType = reflect.TypeFor[plugintypes.Transformation]()

// ruleTransformations returns the transformation chain of a Coraza rule
// (a *corazawaf.Rule) and a name for each step: the function's name, so
// that identical chains of two rules share Coraza's cache. Every
// transformation Coraza registers is a distinct top-level function, and
// Rampart registers none, so a name stands for one behaviour; a plugin
// that registered closures of one function under several names would
// need another identity. ok is false when the rule has multiMatch or its
// fields are not laid out as expected.
func ruleTransformations(rule any) (steps []plugintypes.Transformation, names []string, ok bool) {
	v, ok := pointedStruct(rule)
	if !ok {
		return nil, nil, false
	}
	if mm := v.FieldByName("MultiMatch"); !mm.IsValid() || mm.Kind() != reflect.Bool || mm.Bool() {
		return nil, nil, false
	}
	f := v.FieldByName("transformations")
	if !f.IsValid() || f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Struct || !f.CanAddr() {
		return nil, nil, false
	}
	fn, found := f.Type().Elem().FieldByName("Function")
	if !found || fn.Type != transformationType {
		return nil, nil, false
	}
	f = exposed(f) // the field is unexported
	for i := range f.Len() {
		t, _ := f.Index(i).FieldByIndex(fn.Index).Interface().(plugintypes.Transformation)
		if t == nil {
			return nil, nil, false
		}
		steps = append(steps, t)
		names = append(names, funcName(t))
	}
	return steps, names, true
}

func funcName(t plugintypes.Transformation) string {
	if f := runtime.FuncForPC(reflect.ValueOf(t).Pointer()); f != nil {
		return f.Name()
	}
	return "?"
}

// chain is a fused transformation chain. Its apply applies the steps in
// order as Coraza does: a step that fails leaves the value as it was, and
// its error is reported (Coraza only logs it).
type chain []plugintypes.Transformation

func (c chain) apply(in string) (string, bool, error) {
	v := in
	var errs []error
	for _, t := range c {
		out, _, err := t(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		v = out
	}
	return v, v != in, errors.Join(errs...)
}

// crsFS is the embedded CRS with rampart_fuse appended to the action list
// of every SecRule in its rule files (@owasp_crs/*.conf), and its
// ctl:ruleRemoveTargetByTag actions rewritten (ctltag.go). Line numbers
// are kept. Other files (crs-setup, data files) are served as they are.
var crsFS = sync.OnceValue(func() fs.FS {
	files := map[string][]byte{}
	names, _ := fs.Glob(coreruleset.FS, "@owasp_crs/*.conf")
	for _, name := range names {
		b, err := fs.ReadFile(coreruleset.FS, name)
		if err != nil {
			continue // served from the original, unfused
		}
		files[name] = appendFuse(rewriteTagCtl(b))
	}
	return overlayFS{base: coreruleset.FS, files: files}
})

// appendFuse appends ",rampart_fuse" to the action list of each SecRule
// directive of a SecLang file that has one. A directive spans the lines
// that end in a backslash (comment lines between them are skipped, as
// Coraza's parser skips them) and the line that does not; its actions, when
// it has any, are its last quoted argument, so the text goes before the
// final quote.
func appendFuse(src []byte) []byte {
	lines := bytes.SplitAfter(src, []byte("\n"))
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/8)
	var directive []byte // the lines of the directive so far, joined as Coraza joins them
	for _, line := range lines {
		body := bytes.TrimRight(line, "\r\n")
		trimmed := bytes.TrimSpace(body)
		if len(trimmed) == 0 || trimmed[0] == '#' {
			out.Write(line)
			continue
		}
		if trimmed[len(trimmed)-1] == '\\' {
			directive = append(directive, trimmed[:len(trimmed)-1]...)
			out.Write(line)
			continue
		}
		directive = append(directive, trimmed...)
		if ruleHasActions(string(directive)) {
			end := bytes.LastIndexByte(body, '"')
			out.Write(body[:end])
			out.WriteString("," + fuseAction)
			out.Write(line[end:])
		} else {
			out.Write(line)
		}
		directive = directive[:0]
	}
	return out.Bytes()
}

// ruleHasActions reports whether directive is a SecRule with an action
// list, split as Coraza's parser splits it: the variables up to the first
// space, a quoted operator (a backslash escapes a quote), then the actions
// in quotes. A chained rule may have none.
func ruleHasActions(directive string) bool {
	rest, ok := strings.CutPrefix(directive, "SecRule ")
	if !ok {
		return false
	}
	_, rest, ok = strings.Cut(strings.Trim(rest, " "), " ")
	rest = strings.TrimLeft(rest, " ")
	if !ok || len(rest) == 0 || rest[0] != '"' {
		return false
	}
	escapes := 0
	for i := 1; i < len(rest); i++ {
		switch {
		case rest[i] == '\\':
			escapes++
			continue
		case rest[i] == '"' && escapes%2 == 0:
			acts := strings.TrimLeft(rest[i+1:], " ")
			return len(acts) >= 2 && acts[0] == '"' && acts[len(acts)-1] == '"'
		}
		escapes = 0
	}
	return false
}

// overlayFS serves files from memory in place of the same names of base.
type overlayFS struct {
	base  fs.FS
	files map[string][]byte
}

func (o overlayFS) Open(name string) (fs.File, error) {
	if b, ok := o.files[name]; ok {
		return &memFile{name: path.Base(name), r: bytes.NewReader(b), size: int64(len(b))}, nil
	}
	return o.base.Open(name)
}

type memFile struct {
	name string
	r    *bytes.Reader
	size int64
}

func (f *memFile) Stat() (fs.FileInfo, error) { return memInfo{f.name, f.size}, nil }
func (f *memFile) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *memFile) Close() error               { return nil }

var _ fs.File = (*memFile)(nil)

type memInfo struct {
	name string
	size int64
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o444 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
