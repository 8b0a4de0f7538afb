package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testport"
)

// adminConfig is a valid file whose admin section is admin (lines under
// "admin:", indented by two), with its listener "web" on web.
func adminConfig(admin, web string) string {
	return fmt.Sprintf("admin:\n%s\nlisteners:\n  web:\n    address: %s\nroutes:\n  - respond: {status: 200}\naccess_log:\n  path: \"off\"\n",
		"  "+strings.ReplaceAll(admin, "\n", "\n  "), web)
}

// TestValidateAdminSecureByDefault: `rampart validate` refuses an admin
// listener that would serve unauthenticated beyond loopback, or whose
// token is written but empty, naming the field and its line; it accepts
// the same address with a token or with the explicit opt-out.
func TestValidateAdminSecureByDefault(t *testing.T) {
	t.Setenv("RAMPART_TEST_EMPTY", "")
	t.Setenv("RAMPART_TEST_TOKEN", "from-env")
	const notLoopback = "is not a loopback address, and no admin.token is set"
	tests := []struct {
		name, admin string
		wantCode    int
		want        string // in stderr, after "FILE:"
	}{
		{"any IPv4", "address: 0.0.0.0:9901", 1, `2: admin.address: "0.0.0.0:9901" ` + notLoopback},
		{"any IPv6", `address: "[::]:9901"`, 1, `2: admin.address: "[::]:9901" ` + notLoopback},
		{"port only", `address: ":9901"`, 1, `2: admin.address: ":9901" ` + notLoopback},
		{"pod IP", "address: 10.0.0.5:9901", 1, `2: admin.address: "10.0.0.5:9901" ` + notLoopback},
		{"host name", "address: rampart:9901", 1, `2: admin.address: "rampart:9901" ` + notLoopback},
		{"empty token on loopback", "address: 127.0.0.1:9901\ntoken: ${RAMPART_TEST_EMPTY}", 1,
			`3: admin.token: "${RAMPART_TEST_EMPTY}" expands to an empty string`},
		{"empty token beyond loopback", "address: 0.0.0.0:9901\ntoken: ${RAMPART_TEST_EMPTY}", 1,
			`3: admin.token: "${RAMPART_TEST_EMPTY}" expands to an empty string`},
		{"token", "address: 0.0.0.0:9901\ntoken: ${RAMPART_TEST_TOKEN}", 0, ""},
		{"opt-out", "address: 0.0.0.0:9901\nallow_unauthenticated: true", 0, ""},
		{"loopback without token", "address: 127.0.0.1:9901", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := writeFile(t, "rampart.yaml", adminConfig(tt.admin, "127.0.0.1:0"))
			var stdout, stderr bytes.Buffer
			if code := run([]string{"validate", "--config", f}, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit code: got %d; want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if want := f + ":" + tt.want; tt.want != "" && !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr: got %q; want it to contain %q", stderr.String(), want)
			}
			if strings.Contains(stderr.String(), "from-env") {
				t.Errorf("stderr shows the token: %q", stderr.String())
			}
		})
	}
}

// TestRunRefusesOpenAdmin: `rampart run` (the binary) exits 1 naming the
// field, and binds nothing, when the admin token is written but empty or
// the admin address is not loopback and has no token. Non-loopback
// addresses here cannot be bound (a documentation range, an unresolvable
// name), so that no test ever listens beyond loopback; the code before the
// fix served the empty-token config without authentication (and was killed
// at the bound) and failed the others on the bind, without the reason.
func TestRunRefusesOpenAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	tests := []struct {
		name  string
		admin func(port int) string
		want  string
	}{
		{"empty token", func(port int) string { return fmt.Sprintf("address: 127.0.0.1:%d\ntoken: ${RAMPART_TEST_EMPTY}", port) },
			`:3: admin.token: "${RAMPART_TEST_EMPTY}" expands to an empty string`},
		{"IPv4 beyond loopback", func(port int) string { return fmt.Sprintf("address: 192.0.2.1:%d", port) },
			":2: admin.address: \"192.0.2.1:"},
		{"name beyond loopback", func(port int) string { return fmt.Sprintf("address: rampart-admin.invalid:%d", port) },
			":2: admin.address: \"rampart-admin.invalid:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web, adminPort := testport.Addr(t), testport.Port(t)
			f := writeFile(t, "rampart.yaml", adminConfig(tt.admin(adminPort), web))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "run", "--config", f)
			cmd.Env = append(os.Environ(), "RAMPART_TEST_EMPTY=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("rampart run: got %v (context %v); want exit code 1\nstderr:\n%s", err, ctx.Err(), stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr: got %q; want it to contain %q", stderr.String(), tt.want)
			}
			for _, addr := range []string{web, fmt.Sprintf("127.0.0.1:%d", adminPort)} {
				if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
					c.Close()
					t.Errorf("%s accepts a connection after the refused run; want nothing bound", addr)
				}
			}
		})
	}
}
