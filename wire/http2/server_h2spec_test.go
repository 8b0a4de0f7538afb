package http2

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// h2specMinPassed is the bar of issue 18 for a TLS listener: at least 142
// of h2spec's 145 tests.
const h2specMinPassed = 142

// TestH2Spec runs h2spec (github.com/summerwind/h2spec) against a TLS
// server whose handler reads the request body and answers 200. It is
// skipped when h2spec is not installed (`go install
// github.com/summerwind/h2spec/cmd/h2spec@latest`).
func TestH2Spec(t *testing.T) {
	bin, err := exec.LookPath("h2spec")
	if err != nil {
		if gp := os.Getenv("GOPATH"); gp != "" {
			bin = filepath.Join(gp, "bin", "h2spec")
		} else if home, herr := os.UserHomeDir(); herr == nil {
			bin = filepath.Join(home, "go", "bin", "h2spec")
		}
		if _, serr := os.Stat(bin); serr != nil {
			t.Skip("h2spec is not installed")
		}
	}
	ts := startServer(t, Config{}, wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, s wire.Stream) {
		if r := ctx.Request.BodyStream(); r != nil {
			_, _ = io.Copy(io.Discard, r)
		}
		ctx.SetBodyString("hello from rampart\n") // h2spec expects DATA
	}), serverTLSConfig(t))
	_, port, _ := splitHostPort(ts.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, "-t", "-k", "-h", "127.0.0.1", "-p", port, "-o", "5").CombinedOutput()
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no h2spec summary in its output:\n%s", out)
	}
	passed, _ := strconv.Atoi(string(m[2]))
	t.Logf("h2spec: %s", m[0])
	if testing.Verbose() {
		t.Logf("%s", out)
	}
	if passed < h2specMinPassed {
		t.Errorf("h2spec passed %d; want at least %d\n%s", passed, h2specMinPassed, out)
	}
}
