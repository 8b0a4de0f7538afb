package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// reloadConfig is a config with two upstreams, a route to each, and an
// optional second listener and rate limit; version is echoed by a respond
// route so a client can tell which config served it.
func reloadConfig(webAddr, extraAddr, upA, upB string, version int, toB bool) string {
	target := "a"
	if toB {
		target = "b"
	}
	extra := ""
	if extraAddr != "" {
		extra = fmt.Sprintf("  extra:\n    address: %s\n", extraAddr)
	}
	return fmt.Sprintf(`
admin:
  address: 127.0.0.1:0
listeners:
  web:
    address: %s
%s
upstreams:
  a:
    targets: [{url: "http://%s"}]
  b:
    targets: [{url: "http://%s"}]
rate_limits:
  roomy:
    rate: 100000/s
routes:
  - name: version
    match: {path_prefix: /version}
    respond: {status: 200, body: "v%d"}
  - name: app
    upstream: %s
    rate_limit: roomy
access_log:
  path: "off"
`, webAddr, extra, upA, upB, version, target)
}

// TestE2EReloadUnderLoad changes the config ten times, by the file watcher,
// by ReloadFromFile (what SIGHUP calls; cmd/rampart's process test sends a
// real SIGHUP) and by POST /api/v1/reload, while clients send a
// steady stream of requests on keep-alive connections: no request fails, the
// connections stay open (each client uses one), a listener is added and
// removed, and a broken file is refused while the old config serves.
// TestE2EReloadKeepsWebSocket covers tunnels.
func TestE2EReloadUnderLoad(t *testing.T) {
	hits := func(name string) (*httpUpstream, *atomic.Int64) {
		var n atomic.Int64
		u := startHTTPUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			_, _ = io.WriteString(w, name)
		}))
		return u, &n
	}
	upA, hitsA := hits("a")
	upB, hitsB := hits("b")
	dir := t.TempDir()
	file := filepath.Join(dir, "rampart.yaml")
	web := freeAddr(t)
	write := func(body string) {
		t.Helper()
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil { // as editors do
			t.Fatal(err)
		}
	}
	write(reloadConfig(web, "", upA.addr(), upB.addr(), 0, false))
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	srv := serveConfig(t, cfg, e2eLogger())
	if err := srv.WatchConfig(); err != nil {
		t.Fatal(err)
	}

	// Steady load: four clients, each on one keep-alive connection.
	var failures, total atomic.Int64
	var firstFailure sync.Once
	var failMsg atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, web)
			deadline := time.Now().Add(20 * time.Second)
			for n := 0; n < 100000 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := io.WriteString(c.conn, "GET /app HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					failures.Add(1)
					firstFailure.Do(func() { failMsg.Store(err.Error()) })
					return
				}
				resp, err := readRawResponse(c.br, "GET")
				total.Add(1)
				if err != nil || resp.status() != 200 {
					failures.Add(1)
					firstFailure.Do(func() { failMsg.Store(fmt.Sprint(err, resp)) })
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}

	extra := freeAddr(t)
	version := func(addr string) string {
		t.Helper()
		resp := rawGet(t, addr, "x", "/version")
		return string(resp.body)
	}
	waitVersion := func(addr, want string) {
		t.Helper()
		if !waitFor(5*time.Second, func() bool { return version(addr) == want }) {
			t.Fatalf("%s /version: got %q; want %q", addr, version(addr), want)
		}
	}
	for v := 1; v <= 10; v++ {
		toB := v%2 == 1
		extraAddr := ""
		if v >= 4 && v <= 6 {
			extraAddr = extra // a listener added, then removed
		}
		body := reloadConfig(web, extraAddr, upA.addr(), upB.addr(), v, toB)
		switch v % 3 {
		case 0: // the file watcher
			write(body)
		case 1: // ReloadFromFile, as SIGHUP does
			write(body)
			if _, err := srv.ReloadFromFile(); err != nil {
				t.Fatalf("reload %d: %v", v, err)
			}
		case 2: // POST /api/v1/reload on the admin listener
			write(body)
			resp, err := http.Post("http://"+srv.AdminAddr()+"/api/v1/reload", "application/json", nil)
			if err != nil {
				t.Fatalf("reload %d: %v", v, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("reload %d: got %d %s; want 200", v, resp.StatusCode, b)
			}
		}
		waitVersion(web, fmt.Sprintf("v%d", v))
		if extraAddr != "" {
			waitVersion(extra, fmt.Sprintf("v%d", v))
		}
	}
	// The extra listener was removed by version 7.
	if c, err := net.DialTimeout("tcp", extra, time.Second); err == nil {
		_ = c.Close()
		t.Errorf("extra listener after its removal: got a connection; want refused")
	}

	// A broken file is refused; the old config keeps serving.
	write("listeners: {web: {address: " + web + "}}\nroutes:\n  - upstream: missing\n")
	if _, err := srv.ReloadFromFile(); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("broken file: got %v; want an error naming the missing upstream", err)
	}
	if got := version(web); got != "v10" {
		t.Errorf("after a broken file: got %q; want v10 still serving", got)
	}

	close(stop)
	wg.Wait()
	if n := failures.Load(); n != 0 {
		t.Fatalf("failed requests during reloads: got %d of %d (first: %v); want 0", n, total.Load(), failMsg.Load())
	}
	if total.Load() < 40 {
		t.Errorf("requests during the reloads: got %d; want a steady stream", total.Load())
	}
	if hitsA.Load() == 0 || hitsB.Load() == 0 {
		t.Errorf("upstream hits: a=%d b=%d; want both used as the route flipped", hitsA.Load(), hitsB.Load())
	}
}

// TestE2EReloadKeepsWebSocket opens a tunnel, reloads twice (one change to
// the upstreams, one to the routes), and checks the tunnel still echoes.
func TestE2EReloadKeepsWebSocket(t *testing.T) {
	ws := startWSUpstream(t)
	other := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("x"), true })
	yaml := func(route string) string {
		return fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  ws: {targets: [{url: "http://%s"}]}
  other: {targets: [{url: "http://%s"}]}
routes:
  - name: %s
    upstream: ws
access_log: {path: "off"}
`, ws.addr(), other.addr(), route)
	}
	p := startProxy(t, yaml("first"))
	c := dialRaw(t, p.addr)
	key := wsKey()
	if _, err := io.WriteString(c.conn, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := readRawHeader(c.br); err != nil || resp.status() != 101 {
		t.Fatalf("handshake: got %v %v; want 101", resp, err)
	}
	for _, name := range []string{"second", "third"} {
		cfg, err := config.Parse([]byte(yaml(name)), "reload.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := p.srv.Reload(cfg); err != nil || !changed {
			t.Fatalf("reload to %s: got changed=%v err=%v; want a change", name, changed, err)
		}
	}
	// Same config again: a no-op.
	cfg, _ := config.Parse([]byte(yaml("third")), "reload.yaml")
	if changed, err := p.srv.Reload(cfg); err != nil || changed {
		t.Errorf("identical config: got changed=%v err=%v; want a no-op", changed, err)
	}
	msg := []byte("still here")
	if err := writeWSFrame(c.conn, wsFrame{fin: true, opcode: 0x1, payload: msg}, true); err != nil {
		t.Fatalf("write after reloads: %v", err)
	}
	got, _, err := readWSFrame(c.br)
	if err != nil || string(got.payload) != string(msg) {
		t.Fatalf("echo after reloads: got %q %v; want %q", got.payload, err, msg)
	}
}

// TestReloadKeepsCompiledWAF: a reload that changes only an upstream keeps
// the compiled WAF policy (no CRS compile on the reload path); one that
// changes the policy compiles it again.
func TestReloadKeepsCompiledWAF(t *testing.T) {
	up := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("ok"), true })
	other := startRawUpstream(t, func(*rawMessage) (string, bool) { return okResponse("other"), true })
	yaml := func(target string, paranoia int) string {
		return fmt.Sprintf(`
listeners: {web: {address: "127.0.0.1:0"}}
upstreams: {app: {targets: [{url: "http://%s"}]}}
waf:
  main: {mode: block, paranoia_level: %d}
routes: [{name: app, upstream: app, waf: main}]
access_log: {path: "off"}
`, target, paranoia)
	}
	p := startProxy(t, yaml(up.addr(), 1))
	first := p.srv.snap.Load().waf["main"]
	reload := func(body string) time.Duration {
		t.Helper()
		cfg, err := config.Parse([]byte(body), "waf.yaml")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := p.srv.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	took := reload(yaml(other.addr(), 1))
	if got := p.srv.snap.Load().waf["main"]; got != first {
		t.Errorf("upstream-only reload: the WAF policy was compiled again; want it kept")
	}
	t.Logf("upstream-only reload with a CRS policy took %v", took)
	if got := string(rawGet(t, p.addr, "x", "/").body); got != "other" {
		t.Errorf("after the reload: got %q; want the new upstream", got)
	}
	reload(yaml(other.addr(), 2))
	if got := p.srv.snap.Load().waf["main"]; got == first {
		t.Errorf("policy change: got the old compiled policy; want a new one")
	}
	if got := rawGet(t, p.addr, "x", "/?id=1%27%20OR%20%271%27=%271").status(); got != 403 {
		t.Errorf("attack after the reloads: got %d; want 403", got)
	}
}
