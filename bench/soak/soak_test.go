package main

import (
	"bytes"
	"context"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// TestSoakShort runs the soak for 20 s with the faults close together
// (shortOptions): the CI form of `make soak`.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak takes about 30 s")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed")
	}
	o := shortOptions()
	w := &testWriter{t: t}
	defer w.flush()
	o.Out = w
	// The bound covers building rampart and the demo upstream (the go build
	// of a package whose dependencies go test has not built: minutes on a
	// busy 2-core machine) as well as the 20 s soak; the package's own
	// go test -timeout (10 minutes in make test) is the outer bound.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	pass, err := run(ctx, o)
	if err != nil {
		t.Fatalf("soak could not run: %v", err)
	}
	if !pass {
		t.Fatal("soak failed; see the report above")
	}
}

// testWriter sends each line of the report to t.Log (the report's tables
// arrive in pieces).
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex // guards buf: the load, the faults and the sampler all log
	buf []byte
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *testWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(string(w.buf))
		w.buf = nil
	}
}

func TestLeveled(t *testing.T) {
	tests := []struct {
		name string
		v    []float64
		ok   bool
	}{
		{"flat", []float64{10, 10, 10, 10, 10, 10}, true},
		{"growth early only", []float64{5, 8, 10, 10, 10, 10}, true},
		{"within tolerance", []float64{10, 10, 10, 10, 11, 11}, true},
		{"steady growth", []float64{10, 20, 30, 40, 50, 60}, false},
		{"too few", []float64{1, 2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, ok := leveled(tt.v, 0.10, 0)
			if ok != tt.ok {
				t.Errorf("leveled(%v) = %v; want %v", tt.v, ok, tt.ok)
			}
		})
	}
}

func TestMix(t *testing.T) {
	var n [numKinds]int
	for i := range 100 {
		n[mix(i)]++
	}
	want := [numKinds]int{kindGet: 35, kindGetSlow: 5, kindPost: 25, kindPostSlow: 5, kindMem: 20, kindPing: 8, kindAttack: 2}
	if n != want {
		t.Errorf("mix over 100 requests: got %v; want %v", n, want)
	}
}

func TestConfigVariantsValidate(t *testing.T) {
	// Both variants must be valid configs; `rampart validate` is the judge.
	dir := t.TempDir()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/rampart"
	if err := build(context.Background(), root, "./cmd/rampart", bin); err != nil {
		t.Fatal(err)
	}
	p := ports{admin: 19901, web: 18080, redis: 16379, upstreams: [numUpstreams]int{19001, 19002, 19003}}
	for v := range 2 {
		path := dir + "/rampart.yaml"
		if err := writeConfig(path, p, v); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "validate", "--config", path).CombinedOutput()
		if err != nil {
			t.Errorf("variant %d: rampart validate: %v\n%s", v, err, out)
		}
	}
}
