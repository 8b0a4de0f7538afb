package compress

import (
	"slices"
	"testing"
)

// FuzzNegotiate feeds Negotiate arbitrary Accept-Encoding values (attacker
// input): it must not panic, must pick an offered coding or Identity, and
// must never pick a coding the value names alone with q=0.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br, zstd", "br;q=0.5, gzip;q=1.0, *;q=0",
		"identity;q=0", "zstd;q=0", ";;,,", "x-gzip;q=0.001", "*", "gzip;q=", "br ; q = 0.9"} {
		f.Add(s)
	}
	offered := []Coding{Zstd, Brotli, Gzip}
	f.Fuzz(func(t *testing.T, accept string) {
		got := Negotiate([]byte(accept), offered)
		if got != Identity && !slices.Contains(offered, got) {
			t.Fatalf("Negotiate(%q) = %v; not offered", accept, got)
		}
		for _, c := range offered {
			if accept == c.String()+";q=0" && got == c {
				t.Fatalf("Negotiate(%q) = %v; refused with q=0", accept, got)
			}
		}
	})
}
