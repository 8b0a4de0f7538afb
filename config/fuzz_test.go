package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no file makes Parse panic, and that a failure is
// always Errors with at least one entry.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"---\n",
		"- a\n",
		"listeners: [",
		"listeners:\n  web:\n",
		"listeners: {web: {address: ${X}}}\n",
		"a: &a [*a]\n",
		"a: &a {b: *a}\nlisteners: *a\n",
		"routes:\n  - <<: {upstream: x}\n",
		"listeners: {a: 1, a: 2}\n",
		"listeners:\n  web:\n    limits: {idle_timeout: [1], max_header_bytes: {a: 1}}\n",
		"rate_limits: {r: {rate: 9999999999999999999/s}}\n",
		"a: 1\n---\nb: 2\n",
		"!!binary x: 1\n",
		"? [a]\n: b\n",
		"routes:\n  - <<: 1\n",
		"listeners: &l {web: {address: ':1'}}\nupstreams: *l\n",
		"routes: [~]\nupstreams: {a: {targets: [~]}}\nlisteners: {w: ~}\nwaf: {x: ~}\nrate_limits: {r: ~}\n",
		"listeners: {web: {address: !!binary aGVsbG8=}}\n",
		"trusted_proxies: [[1]]\n",
		"upstreams: {a: {targets: [{url: 'http://[::1'}]}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err == nil {
			if c == nil {
				t.Fatal("got nil Config and nil error")
			}
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("got error %T %q; want non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e == nil || e.Msg == "" {
				t.Fatalf("got an empty error in %q", err)
			}
		}
	})
}
