package interop

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// H2specTotal is the number of tests in h2spec v2.2.1 (h2spec --dryrun).
const H2specTotal = 145

// h2specTestTimeout is h2spec's -o: how long one test waits for the
// server's answer (h2spec's default).
const h2specTestTimeout = 2 * time.Second

// H2specResult is the outcome of one h2spec run.
type H2specResult struct {
	Total  int
	Passed int
	// Failed and Skipped name each such test by its spec and section,
	// then its description: "http2/8.1.2.2: Sends a HEADERS frame that
	// contains the connection-specific header field".
	Failed  []string
	Skipped []string
}

// H2spec runs h2spec over TLS, without verifying the certificate, against
// the listener at addr: the whole suite, or only the given sections
// ("http2/6.5", "hpack/4"). Each test is bounded by 2 s, the run by the
// sum. It fails t only when h2spec could not run; the caller judges the
// result.
func H2spec(t testing.TB, addr string, sections ...string) H2specResult {
	t.Helper()
	bin := tool(t, "h2spec")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("h2spec: address %q: %v", addr, err)
	}
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	args := append([]string{"-t", "-k", "-h", host, "-p", port,
		"-o", fmt.Sprint(int(h2specTestTimeout / time.Second)), "-j", report}, sections...)
	ctx, cancel := context.WithTimeout(context.Background(), H2specTotal*h2specTestTimeout+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 2 * time.Second
	out, runErr := cmd.CombinedOutput() // h2spec exits 1 when a test fails
	f, err := os.Open(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report (%v, %v); output:\n%s", runErr, err, tail(out, 30))
	}
	defer f.Close()
	res, err := ParseJUnit(f)
	if err != nil {
		t.Fatalf("h2spec's report: %v", err)
	}
	return res
}

// junit is the shape of h2spec's JUnit report.
type junit struct {
	Suites []struct {
		Cases []struct {
			Package   string    `xml:"package,attr"`
			Classname string    `xml:"classname,attr"`
			Error     *struct{} `xml:"error"`
			Failure   *struct{} `xml:"failure"`
			Skipped   *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// ParseJUnit reads h2spec's JUnit report (-j). A test failed when its
// <testcase> holds an <error> (h2spec's word) or a <failure>.
func ParseJUnit(r io.Reader) (H2specResult, error) {
	var j junit
	if err := xml.NewDecoder(r).Decode(&j); err != nil {
		return H2specResult{}, fmt.Errorf("interop: h2spec report: %w", err)
	}
	var res H2specResult
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			res.Total++
			name := c.Package + ": " + c.Classname
			switch {
			case c.Error != nil || c.Failure != nil:
				res.Failed = append(res.Failed, name)
			case c.Skipped != nil:
				res.Skipped = append(res.Skipped, name)
			default:
				res.Passed++
			}
		}
	}
	return res, nil
}
