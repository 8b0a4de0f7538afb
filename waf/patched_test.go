package waf

import (
	"os"
	"strings"
	"testing"
)

// TestCorazaBuild checks that the tests run on the Coraza they are meant to:
// the Makefile sets RAMPART_CORAZA=patched, so a `make test` whose build
// lost the patch (waf/corazapatch) fails here rather than passing slower.
func TestCorazaBuild(t *testing.T) {
	want := os.Getenv("RAMPART_CORAZA")
	got := "stock"
	if CorazaPatched() {
		got = "patched"
	}
	if want == "" {
		t.Skipf("RAMPART_CORAZA not set (make test sets it); this build's Coraza is %s", got)
	}
	if got != want {
		t.Fatalf("Coraza is %s; RAMPART_CORAZA wants %s", got, want)
	}
	// A test binary carries no module versions, so the version part is
	// "(unknown version)" here; the binary's is checked in cmd/rampart.
	if b := CorazaBuild(); !strings.HasPrefix(b, "coraza ") || !strings.Contains(b, " "+got) {
		t.Errorf("CorazaBuild() = %q; want it to say %q", b, got)
	}
}
