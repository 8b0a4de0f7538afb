package waf

import (
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/corazawaf/coraza/v3/experimental/plugins/macro"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
)

// Coraza expands each rule's msg and logdata before running its operator
// (for %{rule.msg} and %{rule.logdata} in actions), so a rule that does
// not match still builds its logdata string, "Matched Data: %{TX.0} found
// within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}" for most of the CRS: 6.5%
// of a benign GET's CPU. The expansion is a function of the values its
// variables have, and between two rules those rarely change (only a match
// changes them), so the CRS's rules get a memoMacro: it looks the values up
// as Coraza does, and builds the string again only when one of them
// differs from the last expansion of the same text.

// memoizeMacros turns memoMacros on for policies compiled afterwards
// (tests compare with it off).
var memoizeMacros = true

// maxMemoVars is the most variables a memoized macro may have.
const maxMemoVars = 6

// memoMacro expands like the macro it wraps, reusing the last expansion of
// the same text when its variables have the same values.
type memoMacro struct {
	orig  macro.Macro
	parts []memoPart                 // text and variables in order
	last  *atomic.Pointer[memoEntry] // shared by every rule with this text
}

type memoPart struct {
	text string      // when v is nil
	v    macro.Macro // one variable: expands to its value, or to its text when unset
}

type memoEntry struct {
	vals [maxMemoVars]string
	out  string
}

// memoCells holds, per macro text, the last expansion.
var memoCells sync.Map // string -> *atomic.Pointer[memoEntry]

// newMemoMacro wraps m, or returns nil when its text is not one this code
// splits exactly as Coraza does.
func newMemoMacro(m macro.Macro) *memoMacro {
	src := m.String()
	mm := &memoMacro{orig: m}
	nvars := 0
	rest := src
	for rest != "" {
		i := strings.Index(rest, "%{")
		if i < 0 {
			mm.parts = append(mm.parts, memoPart{text: rest})
			break
		}
		if i > 0 {
			mm.parts = append(mm.parts, memoPart{text: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil
		}
		v, err := macro.NewMacro(rest[i : i+j+1])
		if err != nil || v.String() != rest[i:i+j+1] {
			return nil
		}
		mm.parts = append(mm.parts, memoPart{v: v})
		nvars++
		rest = rest[i+j+1:]
	}
	if nvars == 0 || nvars > maxMemoVars {
		return nil
	}
	cell, _ := memoCells.LoadOrStore(src, new(atomic.Pointer[memoEntry]))
	mm.last = cell.(*atomic.Pointer[memoEntry])
	return mm
}

func (m *memoMacro) String() string { return m.orig.String() }

func (m *memoMacro) Expand(tx plugintypes.TransactionState) string {
	var vals [maxMemoVars]string
	n := 0
	for _, p := range m.parts {
		if p.v != nil {
			vals[n] = p.v.Expand(tx)
			n++
		}
	}
	if e := m.last.Load(); e != nil && e.vals == vals {
		return e.out
	}
	var b strings.Builder
	n = 0
	for _, p := range m.parts {
		if p.v != nil {
			b.WriteString(vals[n])
			n++
		} else {
			b.WriteString(p.text)
		}
	}
	e := &memoEntry{vals: vals, out: b.String()}
	m.last.Store(e)
	return e.out
}

// memoizeRuleMacros gives a Coraza rule (*corazawaf.Rule) memoMacros for
// its Msg and LogData fields.
func memoizeRuleMacros(rule any) {
	if !memoizeMacros {
		return
	}
	v, ok := pointedStruct(rule)
	if !ok {
		return
	}
	for _, name := range []string{"Msg", "LogData"} {
		f := v.FieldByName(name)
		if !f.IsValid() || !f.CanSet() || f.Type() != macroType || f.IsNil() {
			continue
		}
		m, _ := f.Interface().(macro.Macro)
		if _, done := m.(*memoMacro); done {
			continue
		}
		if mm := newMemoMacro(m); mm != nil {
			f.Set(reflect.ValueOf(macro.Macro(mm)))
		}
	}
}

var macroType = reflect.TypeFor[macro.Macro]()
