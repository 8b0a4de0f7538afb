package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writeFile writes content to name in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodConfig = `listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: api
    upstream: app
access_log:
  path: "off"
`

// badConfig names an undefined upstream on line 10 and has an unknown
// field on line 4.
const badConfig = `listeners:
  web:
    address: 127.0.0.1:0
    adress: typo
upstreams:
  app:
    targets:
      - url: http://127.0.0.1:9000
routes:
  - name: api
    upstream: missing
`

func TestRunCommands(t *testing.T) {
	good := writeFile(t, "good.yaml", goodConfig)
	bad := writeFile(t, "bad.yaml", badConfig)
	cases := []cliCase{
		{name: "validate good", args: []string{"validate", "--config", good}, wantCode: 0, wantStdout: []string{good + ": ok"}},
		{
			name: "validate bad", args: []string{"validate", "--config", bad}, wantCode: 1,
			wantStderr: []string{
				bad + `:11: routes[0] "api": upstream "missing" is not defined`,
				bad + ":4:", "adress",
			},
		},
		{name: "validate missing file", args: []string{"validate", "--config", filepath.Join(t.TempDir(), "nope.yaml")}, wantCode: 1, wantStderr: []string{"nope.yaml"}},
		{name: "validate without --config", args: []string{"validate"}, wantCode: 2, wantStderr: []string{"--config"}},
		{name: "validate unknown flag", args: []string{"validate", "--nope"}, wantCode: 2, wantStderr: []string{"nope"}},
		{name: "run bad config", args: []string{"run", "--config", bad}, wantCode: 1, wantStderr: []string{`upstream "missing" is not defined`}},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"rampart " + version + "\n"}},
		{name: "--version", args: []string{"--version"}, wantCode: 0, wantStdout: []string{"rampart "}},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: []string{"usage:"}},
		{name: "unknown command", args: []string{"serve"}, wantCode: 2, wantStderr: []string{`unknown command "serve"`, "usage:"}},
		{name: "no command", args: nil, wantCode: 2, wantStderr: []string{"usage:"}},
		{
			name: "run --help", args: []string{"run", "--help"}, wantCode: 0,
			wantStdout: []string{"usage: rampart run", "-config", "-log-level", "-cpuprofile"},
		},
		{
			name: "validate --help", args: []string{"validate", "-h"}, wantCode: 0,
			wantStdout: []string{"usage: rampart validate", "-config"},
			notStdout:  []string{"-log-level", "-cpuprofile"},
		},
		{
			name: "healthcheck --help", args: []string{"healthcheck", "--help"}, wantCode: 0,
			wantStdout: []string{"usage: rampart healthcheck", "-address", "-timeout"},
			notStdout:  []string{"-log-level"},
		},
		{name: "run bad log level", args: []string{"run", "--config", good, "--log-level", "loud"}, wantCode: 2, wantStderr: []string{"--log-level"}},
		{name: "validate stray argument", args: []string{"validate", "--config", good, "extra"}, wantCode: 2, wantStderr: []string{`unexpected argument "extra"`}},
	}
	runCLICases(t, cases)
}

// TestValidateWarnings checks that a configuration that routes nothing
// validates with a warning, and that a SecLang error in inline rules names
// the config file's line as well as the rules' own.
func TestValidateWarnings(t *testing.T) {
	noRoutes := writeFile(t, "noroutes.yaml", "listeners:\n  web:\n    address: 127.0.0.1:0\n")
	unbound := writeFile(t, "unbound.yaml", "listeners:\n  web: {address: 127.0.0.1:0}\n  side: {address: 127.0.0.1:0}\n"+
		"routes:\n  - listeners: [web]\n    respond: {status: 200}\n")
	badRules := writeFile(t, "badrules.yaml", "listeners:\n  web: {address: 127.0.0.1:0}\n"+
		"waf:\n  strict:\n    mode: block\n    rules: |\n      # a comment\n      SecRule ARGS \"@rx (\" \"id:10002,phase:2,pass\"\n"+
		"routes:\n  - respond: {status: 200}\n    waf: strict\n")
	runCLICases(t, []cliCase{
		{
			name: "no routes", args: []string{"validate", "--config", noRoutes}, wantCode: 0,
			wantStdout: []string{noRoutes + ": ok"}, wantStderr: []string{"warning: no routes"},
		},
		{
			name: "listener without routes", args: []string{"validate", "--config", unbound}, wantCode: 0,
			wantStdout: []string{unbound + ": ok"}, wantStderr: []string{"warning: listeners.side: no route is bound"},
		},
		{
			name: "SecLang error", args: []string{"validate", "--config", badRules}, wantCode: 1,
			wantStderr: []string{"waf.strict: rules line 2 (config line 8)"},
		},
	})
}

// TestRunValidateExamples checks that the quick start validates through the
// command. Every example, with the secrets it reads faked, is validated by
// the tests of package examples.
func TestRunValidateExamples(t *testing.T) {
	for _, f := range []string{"../../examples/quickstart.yaml"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", "--config", f}, &stdout, &stderr); code != 0 {
				t.Errorf("exit code: got %d; want 0 (stderr %q)", code, stderr.String())
			}
		})
	}
}

// buildBinary builds the rampart binary into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rampart")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// logWatcher reads the process's JSON log lines and keeps them.
type logWatcher struct {
	mu    sync.Mutex // guards lines
	lines []map[string]any
	raw   bytes.Buffer
	seen  chan struct{} // signalled on each line
}

func watchLog(r io.Reader) (*logWatcher, <-chan struct{}) {
	w := &logWatcher{seen: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			_ = json.Unmarshal(sc.Bytes(), &m)
			w.mu.Lock()
			w.raw.Write(sc.Bytes())
			w.raw.WriteByte('\n')
			if m != nil {
				w.lines = append(w.lines, m)
			}
			w.mu.Unlock()
			select {
			case w.seen <- struct{}{}:
			default:
			}
		}
	}()
	return w, done
}

// find returns the first log line with msg and, when key is not empty,
// that key.
func (w *logWatcher) find(msg, key string) map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.lines {
		if m["msg"] == msg && (key == "" || m[key] != nil) {
			return m
		}
	}
	return nil
}

func (w *logWatcher) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.raw.String()
}

// waitLine waits until find(msg, key) holds.
func (w *logWatcher) waitLine(msg, key string, d time.Duration) map[string]any {
	deadline := time.After(d)
	for {
		if m := w.find(msg, key); m != nil {
			return m
		}
		select {
		case <-w.seen:
		case <-deadline:
			return nil
		}
	}
}

// TestProcessRunAndSIGTERM runs the built binary, proxies requests through
// it, and checks that SIGTERM lets an in-flight request finish and that the
// process exits 0 within its grace period.
// TestBinaryVersion checks what a built binary says of itself: its Coraza
// version, and whether that Coraza has Rampart's patches, which the
// Makefile's builds must have (RAMPART_CORAZA=patched, set by make).
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out, err := exec.Command(buildBinary(t), "version").Output()
	if err != nil {
		t.Fatalf("rampart version: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "rampart ") || !strings.HasPrefix(lines[1], "coraza v3.") {
		t.Fatalf("rampart version printed %q; want the rampart line, then the coraza version", out)
	}
	coraza := strings.Fields(lines[1]) // coraza VERSION patched|stock ...
	if want := os.Getenv("RAMPART_CORAZA"); want != "" && (len(coraza) < 3 || coraza[2] != want) {
		t.Errorf("rampart version: %q; want Coraza %s", lines[1], want)
	}
}

func TestProcessRunAndSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	slowStarted := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowStarted <- struct{}{}
			select {
			case <-time.After(700 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "hello from %s xff=%s", r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(up.Close)

	dir := t.TempDir()
	accessPath := filepath.Join(dir, "access.jsonl")
	cfg := writeFile(t, "rampart.yaml", fmt.Sprintf(`listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    targets:
      - url: %s
routes:
  - name: health
    match: {path_prefix: /healthz}
    respond: {body: "ok\n"}
  - name: app
    upstream: app
access_log:
  path: %s
shutdown:
  grace_period: 5s
`, up.URL, accessPath))

	bin := buildBinary(t)
	cmd := exec.Command(bin, "run", "--config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs, logDone := watchLog(stderr)
	go func() {
		<-logDone // Wait must follow the last read of the pipe
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
			}
		}
	})

	m := logs.waitLine("listening", "address", 10*time.Second)
	if m == nil {
		t.Fatalf("no \"listening\" log line; log:\n%s", logs.text())
	}
	addr, _ := m["address"].(string)
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	get := func(path string) (int, string, error) {
		resp, err := client.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}
	for _, tc := range []struct{ path, want string }{
		{"/healthz", "ok\n"},
		{"/hello", "hello from /hello xff=127.0.0.1"},
	} {
		if code, body, err := get(tc.path); err != nil || code != 200 || body != tc.want {
			t.Errorf("GET %s: got %d %q err %v; want 200 %q", tc.path, code, body, err, tc.want)
		}
	}

	// SIGHUP reloads the file: a changed answer is served, and the
	// process lives on.
	old, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(old), `body: "ok\n"`, `body: "reloaded\n"`, 1)
	if err := os.WriteFile(cfg, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if logs.waitLine(findSIGHUPMsg(logs), "", 5*time.Second) == nil {
		t.Errorf("no log line about SIGHUP; log:\n%s", logs.text())
	}
	deadline := time.Now().Add(5 * time.Second)
	polls := 0
	for {
		polls++
		code, body, err := get("/healthz")
		if err == nil && code == 200 && body == "reloaded\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: got %d %q err %v; want 200 \"reloaded\\n\"", code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(base + "/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the upstream")
	}
	sigAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-slow:
		if r.err != nil || r.code != 200 || r.body != "hello from /slow xff=127.0.0.1" {
			t.Errorf("in-flight request across SIGTERM: got %d %q err %v; want 200", r.code, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request never completed")
	}
	select {
	case err := <-exited:
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			t.Errorf("exit: got code %d; want 0; log:\n%s", ee.ExitCode(), logs.text())
		default:
			t.Errorf("wait: %v", err)
		}
		if d := time.Since(sigAt); d > 5*time.Second {
			t.Errorf("exit %v after SIGTERM; want within the 5s grace period", d)
		}
	case <-time.After(8 * time.Second):
		t.Fatalf("the process did not exit within the grace period; log:\n%s", logs.text())
	}
	if logs.find("stopped", "") == nil {
		t.Errorf("no \"stopped\" log line; log:\n%s", logs.text())
	}

	// The access log was flushed on the way out: one line per request.
	data, err := os.ReadFile(accessPath)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var l struct {
			Path   string `json:"path"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("access log line %q: %v", line, err)
		}
		paths = append(paths, fmt.Sprintf("%s %d", l.Path, l.Status))
	}
	want := []string{"/healthz 200", "/hello 200"}
	for range polls { // the requests that watched for the reload
		want = append(want, "/healthz 200")
	}
	want = append(want, "/slow 200")
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("access log: got %q; want %q", paths, want)
	}
}

// findSIGHUPMsg returns the message of the log line about SIGHUP, once it is
// there, so the test does not depend on its wording beyond the signal name.
func findSIGHUPMsg(w *logWatcher) string {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, m := range w.lines {
			if s, _ := m["msg"].(string); strings.Contains(s, "SIGHUP") {
				w.mu.Unlock()
				return s
			}
		}
		w.mu.Unlock()
		select {
		case <-w.seen:
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "a line mentioning SIGHUP"
}

// TestValidateBuildsTheConfig checks that validate refuses what only
// building the config finds: here a rate beyond what the limiter represents.
func TestValidateBuildsTheConfig(t *testing.T) {
	f := filepath.Join(t.TempDir(), "rate.yaml")
	body := "listeners: {web: {address: \"127.0.0.1:0\"}}\nrate_limits:\n  huge: {rate: 5000000/s}\n" +
		"routes:\n  - respond: {status: 200}\n    rate_limit: huge\n"
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"validate", "--config", f}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit code: got %d; want 1 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `rate limit "huge"`) {
		t.Errorf("stderr: got %q; want it to name the policy", stderr.String())
	}
}

// TestHealthcheck asks a stand-in admin listener's /healthz.
func TestHealthcheck(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		want   int
	}{
		{"alive", http.StatusOK, 0},
		{"unhealthy", http.StatusServiceUnavailable, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/healthz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tt.status)
			}))
			defer srv.Close()
			addr := strings.TrimPrefix(srv.URL, "http://")
			var stdout, stderr bytes.Buffer
			if got := run([]string{"healthcheck", "--address", addr}, &stdout, &stderr); got != tt.want {
				t.Errorf("exit code: got %d; want %d (stderr %q)", got, tt.want, stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if got := run([]string{"healthcheck", "--address", "127.0.0.1:1"}, &stdout, &stderr); got != 1 {
		t.Errorf("nothing listening: exit code %d; want 1", got)
	}
}

// cliCase is one run of the command line: its arguments, the exit code
// wanted and substrings its output must or must not hold.
type cliCase struct {
	name       string
	args       []string
	wantCode   int
	wantStdout []string
	notStdout  []string
	wantStderr []string
}

// runCLICases runs each case through run as a subtest.
func runCLICases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code: got %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout.String(), stderr.String())
			}
			for _, s := range tc.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout: got\n%s\nwant it to contain %q", stdout.String(), s)
				}
			}
			for _, s := range tc.notStdout {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout: got\n%s\nwant it not to contain %q", stdout.String(), s)
				}
			}
			for _, s := range tc.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr: got %q; want it to contain %q", stderr.String(), s)
				}
			}
		})
	}
}
