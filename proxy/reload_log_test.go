package proxy

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testlog"
)

// TestReloadOutcomeLogged checks that every reload says how it ended:
// applied, unchanged or refused, and that a configuration that leaves a
// listener without routes is warned about.
func TestReloadOutcomeLogged(t *testing.T) {
	const base = "listeners:\n  web: {address: 127.0.0.1:0}\naccess_log: {path: \"off\"}\n"
	parse := func(t *testing.T, yaml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatalf("config.Parse: %v", err)
		}
		return cfg
	}
	logs, log := testlog.New(slog.LevelInfo)
	srv := serveConfig(t, parse(t, base+"routes:\n  - respond: {status: 200}\n"), log)
	for _, tt := range []struct {
		name    string
		yaml    string
		wantErr bool
		want    []string
	}{
		{"unchanged", base + "routes:\n  - respond: {status: 200}\n", false, []string{"unchanged; nothing to do"}},
		{"applied", base + "routes:\n  - respond: {status: 204}\n", false, []string{"configuration reloaded"}},
		{"refused", base + "waf:\n  w: {rules: \"SecNope\"}\nroutes:\n  - respond: {status: 200}\n    waf: w\n", true,
			[]string{"configuration reload failed; the running configuration keeps serving"}},
		{"no routes", base, false, []string{"configuration reloaded", "no routes: every request is answered 404"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(logs.Lines())
			_, err := srv.Reload(parse(t, tt.yaml))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reload: got error %v; want error %v", err, tt.wantErr)
			}
			got := strings.Join(logs.Lines()[before:], "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("log after the reload:\n%s\nwant a line with %q", got, w)
				}
			}
		})
	}
}
