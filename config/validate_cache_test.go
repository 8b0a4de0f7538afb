package config

import (
	"strconv"
	"strings"
	"testing"
)

// TestCacheErrors has one problem per file, on the line marked "# <-".
func TestCacheErrors(t *testing.T) {
	cached := "routes:\n  - upstream: app\n    cache: pages\n"
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"store", lis + ups + cached + "caches:\n  pages:\n    store: disk # <-\n", `caches.pages.store: "disk" must be memory or redis`},
		{"redis without redis", lis + ups + cached + "caches:\n  pages:\n    store: redis # <-\n", `caches.pages.store: "redis" needs the top-level redis section`},
		{"object larger than the store", lis + ups + cached + "caches:\n  pages:\n    max_size: 1MiB\n    max_object_size: 2MiB # <-\n", "caches.pages.max_object_size: 2097152 is more than max_size (1048576)"},
		{"object beyond redis's", lis + ups + cached + red + "caches:\n  pages:\n    store: redis\n    max_object_size: 1GiB # <-\n", "caches.pages.max_object_size: 1073741824 is more than 512MiB"},
		{"negative max_stale", lis + ups + cached + "caches:\n  pages:\n    max_stale: -1s # <-\n", `caches.pages.max_stale: invalid duration "-1s": negative`},
		{"unknown policy", lis + ups + "routes:\n  - upstream: app\n    cache: nope # <-\n" + "caches:\n  pages: {}\n", `routes[0] "route-0": cache policy "nope" is not defined`},
		{"unknown field", lis + ups + cached + "caches:\n  pages:\n    ttl: 5m # <-\n", "caches.pages.ttl: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "rampart.yaml")
			if err == nil {
				t.Fatalf("got no error; want %q", tt.want)
			}
			line := 0
			for i, l := range strings.Split(tt.src, "\n") {
				if strings.Contains(l, "# <-") {
					line = i + 1
				}
			}
			if got := err.Error(); !strings.Contains(got, tt.want) || (line > 0 && !strings.Contains(got, "rampart.yaml:"+strconv.Itoa(line)+":")) {
				t.Errorf("got %q; want %q at line %d", got, tt.want, line)
			}
		})
	}
}

// TestCacheDefaults: an empty policy gets every default, and a valid one
// passes.
func TestCacheDefaults(t *testing.T) {
	cfg, err := Parse([]byte(lis+ups+"routes:\n  - upstream: app\n    cache: pages\ncaches:\n  pages:\n  small:\n    max_size: 1MiB\n"), "rampart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := *cfg.Caches["pages"]
	want := Cache{Store: "memory", MaxSize: DefaultCacheMaxSize, MaxObjectSize: DefaultCacheMaxObjectSize,
		MaxStale: Duration(DefaultCacheMaxStale), CoalesceTimeout: Duration(DefaultCacheCoalesceTimeout)}
	if got != want {
		t.Errorf("empty policy: got %+v; want %+v", got, want)
	}
	if got := cfg.Caches["small"].MaxObjectSize; got != 1<<20 {
		t.Errorf("max_object_size of a 1MiB store: got %d; want 1MiB (at most max_size)", got)
	}
}
