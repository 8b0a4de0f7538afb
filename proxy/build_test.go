package proxy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/ratelimit"
)

// recordRedisClients makes every Redis client a build makes until t ends
// appear in the returned slice.
func recordRedisClients(t *testing.T) *[]redis.UniversalClient {
	var made []redis.UniversalClient
	prev := newRedisClient
	newRedisClient = func(c *config.Redis) (redis.UniversalClient, error) {
		client, err := ratelimit.NewRedisClient(c)
		if err == nil {
			made = append(made, client)
		}
		return client, err
	}
	t.Cleanup(func() { newRedisClient = prev })
	return &made
}

// TestBuildFailureClosesRedis: New and Check, failing after they made a
// Redis client (an access log that cannot be opened; a WAF directory that
// does not exist), leave no client open; Check succeeding does not either.
// No Redis server is needed: a closed client says so without dialing.
func TestBuildFailureClosesRedis(t *testing.T) {
	dir := t.TempDir()
	redisAt := redisConfig("127.0.0.1:1") // nothing is dialed
	tests := []struct {
		name    string
		yaml    string
		build   func(*config.Config) error
		wantErr bool
	}{
		{"New, access log unopenable",
			strings.Replace(limitConfig("127.0.0.1:9", "key: client_ip\nrate: 1/s\nstore: redis", redisAt),
				`path: "off"`, "path: "+filepath.Join(dir, "no", "such", "dir", "a.log"), 1),
			func(c *config.Config) error { _, err := New(c, e2eLogger()); return err }, true},
		{"Check succeeds",
			limitConfig("127.0.0.1:9", "key: client_ip\nrate: 1/s\nstore: redis", redisAt),
			Check, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			made := recordRedisClients(t)
			cfg, err := config.Parse([]byte(tt.yaml), "test.yaml")
			if err != nil {
				t.Fatalf("config.Parse: %v\n%s", err, tt.yaml)
			}
			err = tt.build(cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v; want error: %v", err, tt.wantErr)
			}
			if len(*made) != 1 {
				t.Fatalf("got %d Redis clients made; want 1", len(*made))
			}
			if err := (*made)[0].Ping(context.Background()).Err(); !errors.Is(err, redis.ErrClosed) {
				t.Errorf("the client after the build: Ping got %v; want %v", err, redis.ErrClosed)
			}
		})
	}
}

// TestCheckOpensNoAccessLog: validation builds as New does, in a dry run
// that creates no access log file.
func TestCheckOpensNoAccessLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "access.log")
	yaml := strings.Replace(oneUpstreamConfig("127.0.0.1:9", "", "", ""), `path: "off"`, "path: "+logPath, 1)
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("access log after Check: stat got %v; want it not to exist", err)
	}
}

// TestE2EReloadAccessLogPath: a reload that changes access_log.path writes
// the next requests' lines to the new file; the old file keeps the lines
// of the requests before it.
func TestE2EReloadAccessLogPath(t *testing.T) {
	up := okUpstream(t)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")
	yaml := func(path string) string {
		return strings.Replace(oneUpstreamConfig(up.addr(), "", "", ""), `path: "off"`, "path: "+path, 1)
	}
	p := startProxy(t, yaml(first))
	if got := rawGet(t, p.addr, "app.test", "/before").status(); got != 200 {
		t.Fatalf("before the reload: got %d; want 200", got)
	}
	cfg, err := config.Parse([]byte(yaml(second)), "test.yaml") // the same listener address: kept
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := p.srv.Reload(cfg); err != nil || !changed {
		t.Fatalf("Reload: changed %v, error %v; want true, nil", changed, err)
	}
	if got := rawGet(t, p.addr, "app.test", "/after").status(); got != 200 {
		t.Fatalf("after the reload: got %d; want 200", got)
	}
	// Shutdown flushes the running log; the retired one is flushed on
	// its own ticker (200 ms) and closed a minute after the reload.
	p.stop(t)
	if !waitFor(e2eTimeout, func() bool { return len(readURILines(t, first)) == 1 }) {
		t.Fatalf("%s: got %d lines; want 1", first, len(readURILines(t, first)))
	}
	tests := []struct {
		name, file, wantPath string
	}{
		{"before the reload", first, "/before"},
		{"after the reload", second, "/after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := readURILines(t, tt.file)
			if len(lines) != 1 {
				t.Fatalf("%s: got %d lines; want 1", tt.file, len(lines))
			}
			if lines[0].Path != tt.wantPath {
				t.Errorf("%s: got path %q; want %q", tt.file, lines[0].Path, tt.wantPath)
			}
		})
	}
}
