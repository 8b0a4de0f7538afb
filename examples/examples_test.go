// Package examples holds no code: its tests check the example
// configurations and deployment files beside them, so that what the README
// points a newcomer to is known to work.
package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testcert"
	"github.com/rampart-proxy/rampart/proxy"
	"github.com/rampart-proxy/rampart/waf"
)

// exampleConfigs are the configuration files of this directory that
// `rampart validate` must accept. Configs embedded in Kubernetes ConfigMaps
// are checked by TestKubernetesManifests.
var exampleConfigs = []string{
	"quickstart.yaml",
	"edge.yaml",
	"canary.yaml",
	"api-gateway.yaml",
	"compose/rampart.yaml",
}

// fakeEncryptionKey stands in for an acme.encryption_key (32 bytes, base64).
const fakeEncryptionKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

// fakeSecrets sets the environment variables that the examples reference,
// with stand-in values, and writes the files they name.
func fakeSecrets(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	cert, key := writeCertificate(t, dir, "api.example.com")
	for k, v := range map[string]string{
		"RAMPART_ADMIN_TOKEN":         "test-admin-token",
		"REDIS_ADDRESS":               "127.0.0.1:6379",
		"REDIS_PASSWORD":              "test-redis-password",
		"RAMPART_ACME_ENCRYPTION_KEY": fakeEncryptionKey,
		"API_TLS_CERT":                cert,
		"API_TLS_KEY":                 key,
	} {
		t.Setenv(k, v)
	}
}

// checkConfig does what `rampart validate` does (config.Load, then
// proxy.Check), and compiles the WAF policies, which proxy.Check leaves to
// the WAF package until the WAF is on the request path.
func checkConfig(t *testing.T, cfg *config.Config, dir string) {
	t.Helper()
	if err := proxy.Check(cfg); err != nil {
		t.Errorf("proxy.Check: %v", err)
	}
	if err := waf.Validate(cfg.WAF, dir); err != nil {
		t.Errorf("waf.Validate: %v", err)
	}
}

func TestValidateExamples(t *testing.T) {
	fakeSecrets(t)
	for _, name := range exampleConfigs {
		t.Run(name, func(t *testing.T) {
			cfg, err := config.Load(name)
			if err != nil {
				t.Fatalf("rampart validate --config %s:\n%v", name, err)
			}
			checkConfig(t, cfg, filepath.Dir(name))
		})
	}
}

// TestExamplesNeedTheirSecrets checks that the secrets really come from the
// environment: without them, validation names the missing variable.
func TestExamplesNeedTheirSecrets(t *testing.T) {
	for _, tc := range []struct{ file, variable string }{
		{"edge.yaml", "REDIS_PASSWORD"},
		{"edge.yaml", "RAMPART_ADMIN_TOKEN"},
		{"edge.yaml", "RAMPART_ACME_ENCRYPTION_KEY"},
		{"api-gateway.yaml", "API_TLS_KEY"},
		{"compose/rampart.yaml", "RAMPART_ADMIN_TOKEN"},
	} {
		t.Run(tc.file+" "+tc.variable, func(t *testing.T) {
			fakeSecrets(t)
			os.Unsetenv(tc.variable) // restored by fakeSecrets' t.Setenv
			_, err := config.Load(tc.file)
			if err == nil {
				t.Fatalf("config.Load(%s) without %s: got no error", tc.file, tc.variable)
			}
			if want := `"` + tc.variable + `" is not defined`; !strings.Contains(err.Error(), want) {
				t.Errorf("got %v; want an error containing %q", err, want)
			}
		})
	}
}

// writeCertificate writes a certificate for host (and 127.0.0.1), signed by
// a CA of the test, and its key in dir, and returns their paths.
func writeCertificate(t *testing.T, dir, host string) (certFile, keyFile string) {
	t.Helper()
	return testcert.NewCA(t, "Examples CA").Issue(t, host, time.Time{}, false, host, "127.0.0.1").Write(t, dir, host)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
