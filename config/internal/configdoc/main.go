// Command configdoc writes docs/config.md, the reference of Rampart's
// configuration file, from the config package's own source: the YAML name
// and type of every field come from the struct tags of config/types.go, its
// meaning from the field's doc comment, and its default from the
// orDefault(&field, value) calls of config/defaults.go, so the reference
// cannot drift from the code. `go generate ./config` runs it; a test fails
// when docs/config.md differs from what it would write.
//
//	go run ./config/internal/configdoc -dir config -o docs/config.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/constant"
	"go/doc"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sources are the files of the config package that the reference is made
// from: types.go, the types_*.go files (one per feature) and defaults.go.
// They must type-check on their own (they import only the standard
// library).
func sources(dir string) ([]string, error) {
	more, err := filepath.Glob(filepath.Join(dir, "types_*.go"))
	if err != nil {
		return nil, err
	}
	names := []string{"types.go"}
	for _, m := range more {
		if !strings.HasSuffix(m, "_test.go") {
			names = append(names, filepath.Base(m))
		}
	}
	sort.Strings(names[1:])
	return append(names, "defaults.go"), nil
}

func main() {
	dir := flag.String("dir", ".", "the config package's directory")
	out := flag.String("o", "", "write here instead of standard output")
	flag.Parse()
	b, err := Generate(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

// pkg is the parsed and type-checked config package (types.go and
// defaults.go only).
type pkg struct {
	fset     *token.FileSet
	doc      *doc.Package
	types    *types.Package
	info     *types.Info
	specs    map[string]*ast.TypeSpec // type name -> declaration
	defaults map[*types.Var]string    // field -> its default, formatted
}

// Generate returns the Markdown reference for the config package in dir.
func Generate(dir string) ([]byte, error) {
	p, err := load(dir)
	if err != nil {
		return nil, err
	}
	var w writer
	p.write(&w)
	return w.Bytes(), nil
}

func load(dir string) (*pkg, error) {
	p := &pkg{fset: token.NewFileSet(), specs: map[string]*ast.TypeSpec{}, defaults: map[*types.Var]string{}}
	var files []*ast.File
	names, err := sources(dir)
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		f, err := parser.ParseFile(p.fset, dir+"/"+name, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	p.info = &types.Info{
		Types:      map[ast.Expr]types.TypeAndValue{},
		Defs:       map[*ast.Ident]types.Object{},
		Uses:       map[*ast.Ident]types.Object{},
		Selections: map[*ast.SelectorExpr]*types.Selection{},
	}
	// The compiler's export data is fast; type-checking the standard
	// library from source is the fallback where it cannot be found.
	const path = "github.com/rampart-proxy/rampart/config"
	conf := types.Config{Importer: importer.Default()}
	tp, err := conf.Check(path, p.fset, files, p.info)
	if err != nil {
		conf.Importer = importer.ForCompiler(p.fset, "source", nil)
		if tp, err = conf.Check(path, p.fset, files, p.info); err != nil {
			return nil, fmt.Errorf("type-checking %s: %w", strings.Join(names, ", "), err)
		}
	}
	p.types = tp
	// Before go/doc, which drops the unexported applyDefaults methods.
	for _, f := range files {
		ast.Inspect(f, p.findDefault)
	}
	// doc.NewFromFiles takes ownership of the comments; the type
	// declarations it returns are the same nodes as the files'.
	dp, err := doc.NewFromFiles(p.fset, files, tp.Path(), doc.PreserveAST)
	if err != nil {
		return nil, err
	}
	p.doc = dp
	for _, t := range dp.Types {
		for _, s := range t.Decl.Specs {
			if ts, ok := s.(*ast.TypeSpec); ok {
				p.specs[ts.Name.Name] = ts
			}
		}
	}
	return p, nil
}

// findDefault records the default that n gives a field: a call
// orDefault(&x.Field, value) or orDefaultPtr(&x.Field, value) with a
// constant value, an assignment x.Field = strings.Fields(constant), or an
// assignment
// x.Field = []T{constants...}.
func (p *pkg) findDefault(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.CallExpr:
		if id, ok := n.Fun.(*ast.Ident); !ok || id.Name != "orDefault" && id.Name != "orDefaultPtr" || len(n.Args) != 2 {
			return true
		}
		u, ok := n.Args[0].(*ast.UnaryExpr)
		if !ok || u.Op != token.AND {
			return true
		}
		if f := p.field(u.X); f != nil {
			if v := p.info.Types[n.Args[1]].Value; v != nil {
				p.defaults[f] = format(deref(f.Type()), v)
			}
		}
	case *ast.AssignStmt:
		if len(n.Lhs) != 1 || len(n.Rhs) != 1 {
			return true
		}
		f := p.field(n.Lhs[0])
		if call, ok := n.Rhs[0].(*ast.CallExpr); ok && f != nil && len(call.Args) == 1 {
			// x.Field = strings.Fields(Constant): a list kept in one constant.
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Fields" {
				if v := p.info.Types[call.Args[0]].Value; v != nil && v.Kind() == constant.String {
					p.defaults[f] = "[" + strings.Join(strings.Fields(constant.StringVal(v)), ", ") + "]"
				}
			}
			return true
		}
		lit, ok := n.Rhs[0].(*ast.CompositeLit)
		if f == nil || !ok {
			return true
		}
		var elems []string
		for _, e := range lit.Elts {
			v := p.info.Types[e].Value
			if v == nil {
				return true
			}
			elems = append(elems, constant.StringVal(v))
		}
		p.defaults[f] = "[" + strings.Join(elems, ", ") + "]"
	}
	return true
}

// field returns the struct field that the selector e denotes, or nil.
func (p *pkg) field(e ast.Expr) *types.Var {
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return nil
	}
	s := p.info.Selections[sel]
	if s == nil || s.Kind() != types.FieldVal {
		return nil
	}
	return s.Obj().(*types.Var)
}

// format writes a default value the way the YAML file would.
func format(t types.Type, v constant.Value) string {
	name := ""
	if n, ok := t.(*types.Named); ok {
		name = n.Obj().Name()
	}
	switch {
	case name == "Duration":
		d, _ := constant.Int64Val(v)
		return time.Duration(d).String()
	case name == "Size":
		n, _ := constant.Int64Val(v)
		return formatSize(n)
	case v.Kind() == constant.String:
		return constant.StringVal(v)
	default:
		return v.ExactString()
	}
}

// formatSize writes n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// section is one struct type of the file, documented where it first
// appears under Config.
type section struct {
	path string // YAML path, e.g. listeners.NAME.limits
	name string // Go type name
}

// title is the section's heading: its YAML path.
func (s section) title() string {
	if s.path == "" {
		return "top level"
	}
	return s.path
}

// write renders the whole reference.
func (p *pkg) write(w *writer) {
	w.line("# Configuration reference")
	w.line("")
	w.line("<!-- Generated by `go generate ./config` (config/internal/configdoc) from config/types.go")
	w.line("     and config/defaults.go. Do not edit: change the doc comments and regenerate. -->")
	w.line("")
	w.line("Rampart reads one YAML file (`rampart run --config FILE`; check it with")
	w.line("`rampart validate --config FILE`). Unknown fields are errors, omitted fields take")
	w.line("the defaults below, and every error names the file, the line and the field.")
	w.line("`${NAME}` in a value is replaced by the environment variable NAME (`$$` is a")
	w.line("literal `$`); an undefined variable is an error. The file is reloaded on SIGHUP")
	w.line("and when it changes; a file that fails validation is refused and the running")
	w.line("configuration stays.")
	w.line("")
	w.line("In paths, `NAME` stands for a name you choose (a map key) and `[]` for an item")
	w.line("of a list. The examples in [examples/](../examples/) are validated by the tests.")
	w.line("")

	sections := p.walk()
	w.line("## Sections")
	w.line("")
	for _, s := range sections {
		w.line("- [`%s`](#%s)", s.title(), anchor(s.title()))
	}
	w.line("- [Value types](#value-types)")
	w.line("")
	for _, s := range sections {
		p.writeSection(w, s)
	}
	p.writeScalars(w)
}

// walk lists the struct types reachable from Config, depth first in field
// order, each at the first path that reaches it.
func (p *pkg) walk() []section {
	var out []section
	seen := map[string]bool{}
	var visit func(path, name string)
	visit = func(path, name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		out = append(out, section{path: path, name: name})
		for _, f := range p.fields(name) {
			if sub, ok := p.structOf(f.typ); ok {
				visit(joinPath(path, f.yaml+f.suffix), sub)
			}
		}
	}
	visit("", "Config")
	return out
}

// fieldInfo is one YAML field of a struct.
type fieldInfo struct {
	yaml   string     // YAML name
	suffix string     // ".NAME" for maps, "[]" for lists: how paths go on below it
	typ    types.Type // Go type
	obj    *types.Var
	doc    string
}

// fields returns the YAML fields of the struct type name, in order.
func (p *pkg) fields(name string) []fieldInfo {
	st, ok := p.types.Scope().Lookup(name).Type().Underlying().(*types.Struct)
	if !ok {
		return nil
	}
	docs := p.fieldDocs(name)
	var out []fieldInfo
	for i := 0; i < st.NumFields(); i++ {
		f := st.Field(i)
		tag := reflect.StructTag(st.Tag(i)).Get("yaml")
		y, _, _ := strings.Cut(tag, ",")
		if y == "" || y == "-" {
			continue
		}
		fi := fieldInfo{yaml: y, typ: f.Type(), obj: f, doc: docs[f.Name()]}
		switch t := deref(f.Type()).(type) {
		case *types.Map:
			fi.suffix = ".NAME"
		case *types.Slice:
			if _, ok := p.structOf(t.Elem()); ok {
				fi.suffix = "[]"
			}
		}
		out = append(out, fi)
	}
	// "CertFile and KeyFile are ..." documents both fields.
	for i := range out {
		if out[i].doc != "" {
			continue
		}
		for _, o := range out {
			if o.doc != "" && regexp.MustCompile(`\b`+out[i].obj.Name()+`\b`).MatchString(o.doc) {
				out[i].doc = "See `" + o.yaml + "`."
				break
			}
		}
	}
	return out
}

// fieldDocs returns the doc comment of every field of struct type name,
// as one paragraph. Fields declared together share the comment.
func (p *pkg) fieldDocs(name string) map[string]string {
	out := map[string]string{}
	ts := p.specs[name]
	if ts == nil {
		return out
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		return out
	}
	for _, f := range st.Fields.List {
		text := paragraph(f.Doc.Text())
		if text == "" {
			text = paragraph(f.Comment.Text())
		}
		for _, n := range f.Names {
			out[n.Name] = text
		}
	}
	return out
}

// structOf returns the name of the documented struct type that t holds
// (through pointers, slices and maps), unless it is a scalar such as Rate.
func (p *pkg) structOf(t types.Type) (string, bool) {
	t = deref(t)
	switch u := t.(type) {
	case *types.Slice:
		return p.structOf(u.Elem())
	case *types.Map:
		return p.structOf(u.Elem())
	case *types.Named:
		if _, ok := u.Underlying().(*types.Struct); ok && u.Obj().Pkg() == p.types && !p.scalar(u.Obj().Name()) {
			return u.Obj().Name(), true
		}
	}
	return "", false
}

// scalar reports whether the named type is written as a YAML scalar: a
// non-struct type, or a struct without YAML fields (Rate).
func (p *pkg) scalar(name string) bool {
	obj := p.types.Scope().Lookup(name)
	st, ok := obj.Type().Underlying().(*types.Struct)
	if !ok {
		return true
	}
	for i := 0; i < st.NumFields(); i++ {
		if reflect.StructTag(st.Tag(i)).Get("yaml") != "" {
			return false
		}
	}
	return true
}

// writeSection renders one struct type as a table of its fields.
func (p *pkg) writeSection(w *writer, s section) {
	w.line("## `%s`", s.title())
	w.line("")
	if t := p.typeDoc(s.name); t != "" {
		w.line("%s", t)
		w.line("")
	}
	w.line("| field | type | default | meaning |")
	w.line("|---|---|---|---|")
	for _, f := range p.fields(s.name) {
		name := f.yaml
		if _, ok := p.structOf(f.typ); ok {
			name = fmt.Sprintf("[%s](#%s)", f.yaml, anchor(joinPath(s.path, f.yaml+f.suffix)))
		} else {
			name = "`" + name + "`"
		}
		w.line("| %s | %s | %s | %s |", name, cell(p.typeName(f.typ)), cell(p.defaultOf(f)), cell(p.expandConsts(f.doc, f.typ)))
	}
	w.line("")
}

// constRe finds the Default* constants that doc comments name.
var constRe = regexp.MustCompile(`\bDefault[A-Z]\w*`)

// expandConsts replaces the Default* constants named in a field's doc
// with their values, written as in the file: the reader of the YAML
// reference has no use for Go names.
func (p *pkg) expandConsts(text string, t types.Type) string {
	t = deref(t)
	if s, ok := t.(*types.Slice); ok {
		t = s.Elem()
	}
	return constRe.ReplaceAllStringFunc(text, func(name string) string {
		c, ok := p.types.Scope().Lookup(name).(*types.Const)
		if !ok {
			return name
		}
		return "`" + format(t, c.Val()) + "`"
	})
}

// typeDoc returns the doc comment of a type as one paragraph.
func (p *pkg) typeDoc(name string) string {
	for _, t := range p.doc.Types {
		if t.Name == name {
			return paragraph(t.Doc)
		}
	}
	return ""
}

// defaultRe finds "Default X." in a doc comment when no orDefault call
// gives the field its default (a default computed from other fields).
var defaultRe = regexp.MustCompile(`(?:^|\. )Default:? ([^.]*(?:\.\d[^.]*)*)\.`)

// defaultOf returns the default of a field: the value that ApplyDefaults
// sets, else what the doc comment says.
func (p *pkg) defaultOf(f fieldInfo) string {
	if d, ok := p.defaults[f.obj]; ok {
		return "`" + d + "`"
	}
	if m := defaultRe.FindStringSubmatch(f.doc); m != nil && !strings.Contains(m[1], "Default") {
		return m[1]
	}
	for _, sentence := range strings.Split(strings.TrimSuffix(f.doc, "."), ". ") {
		if sentence == "Required" || strings.HasPrefix(sentence, "At least one") && strings.HasSuffix(sentence, " is required") {
			return "required"
		}
	}
	switch {
	case strings.Contains(f.doc, "Zero (the default)"):
		return "`0`"
	case p.typeName(f.typ) == "boolean":
		return "`false`"
	}
	return "unset"
}

// typeName writes a Go type in the YAML file's words.
func (p *pkg) typeName(t types.Type) string {
	t = deref(t)
	switch u := t.(type) {
	case *types.Slice:
		return "list of " + plural(p.typeName(u.Elem()))
	case *types.Map:
		return "map of names to " + plural(p.typeName(u.Elem()))
	case *types.Named:
		if _, ok := p.structOf(u); ok {
			return "object"
		}
		switch n := u.Obj().Name(); n {
		case "Duration", "Size", "Rate":
			return "[" + strings.ToLower(n) + "](#" + strings.ToLower(n) + ")"
		}
		return p.typeName(u.Underlying())
	case *types.Basic:
		switch {
		case u.Info()&types.IsString != 0:
			return "string"
		case u.Info()&types.IsBoolean != 0:
			return "boolean"
		case u.Info()&types.IsInteger != 0:
			return "integer"
		}
	}
	return t.String()
}

// writeScalars documents the value types written as scalars.
func (p *pkg) writeScalars(w *writer) {
	w.line("## Value types")
	w.line("")
	var names []string
	for name := range p.specs {
		if p.scalar(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		w.line("### %s", strings.ToLower(n))
		w.line("")
		w.line("%s", p.typeDoc(n))
		w.line("")
	}
}

// plural makes a one-word type name plural.
func plural(s string) string {
	if strings.ContainsAny(s, " []") {
		return s
	}
	return s + "s"
}

// deref strips pointers.
func deref(t types.Type) types.Type {
	for {
		pt, ok := t.(*types.Pointer)
		if !ok {
			return t
		}
		t = pt.Elem()
	}
}

func joinPath(base, name string) string {
	if base == "" {
		return name
	}
	return base + "." + name
}

// anchor is GitHub's heading anchor for "`path`": lower case, punctuation
// other than "-" and "_" dropped, spaces to "-".
func anchor(path string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(path) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// paragraph joins a comment's lines into one.
func paragraph(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// writer accumulates lines.
type writer struct{ bytes.Buffer }

func (w *writer) line(format string, args ...any) {
	fmt.Fprintf(&w.Buffer, format, args...)
	w.WriteByte('\n')
}
