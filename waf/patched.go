package waf

import (
	"runtime/debug"
	"sync"

	"github.com/corazawaf/coraza/v3"
)

// Rampart builds Coraza with a patch of its own (waf/corazapatch:
// a transaction reuses what it read from a collection until the collection
// changes, and a single transformation is not cached). `make build` and the
// container image apply it; a plain `go build` or `go install` uses stock
// Coraza, which gives the same verdicts more slowly. CorazaBuild says which
// one this binary has.

// corazaModule is Coraza's module path.
const corazaModule = "github.com/corazawaf/coraza/v3"

// CorazaPatched reports whether this binary's Coraza has Rampart's patch.
// It looks for what the patch adds to a transaction: a field "fields" of
// type fieldCopies.
var CorazaPatched = sync.OnceValue(func() bool {
	w, err := coraza.NewWAF(coraza.NewWAFConfig())
	if err != nil {
		return false
	}
	tx := w.NewTransaction()
	defer tx.Close()
	v, ok := pointedStruct(tx)
	if !ok {
		return false
	}
	f := v.FieldByName("fields")
	return f.IsValid() && f.Type().Name() == "fieldCopies"
})

// CorazaBuild describes this binary's Coraza: its version, then "patched"
// or "stock".
func CorazaBuild() string {
	version := "(unknown version)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == corazaModule {
				version = d.Version
			}
		}
	}
	if CorazaPatched() {
		return "coraza " + version + " patched"
	}
	return "coraza " + version + " stock (built without make: the WAF is slower, its verdicts the same)"
}
