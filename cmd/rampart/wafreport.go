package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rampart-proxy/rampart/waf/tuning"
)

const wafReportUsage = `usage: rampart waf report --audit-log FILE [options]

Summarizes a WAF audit log (one JSON event a line, as written by a policy's
audit_log): the events by route, then the rules that matched by route,
path and parameter (the most frequent first), and prints the exclusions
that would stop those matches, in Rampart's YAML (waf.POLICY.exclusions),
ready to paste into the configuration once reviewed.

Every match in the log is treated as a false positive: run it on a log of
traffic known to be legitimate (a policy in mode detect, a test run), or
narrow it with --route and read the list before using it. An exclusion
also lets through attacks that match only where it applies. The CRS's
evaluation rules (949xxx, 959xxx, 980xxx) are not listed; body processing
failures (200000-200099) are listed but never excluded.

Options:
  --audit-log FILE   the audit log ("-": standard input) (required)
  --route NAME       only this route's events
  --blocked          only blocked events (default: blocked and detected)
  --path-depth N     cut paths to their first N segments, so that one
                     exclusion covers /api/v1/orders/17 and /api/v1/orders/18
                     (default 0: whole paths)
  --top N            matches listed per route (default 30; 0: all)

Exit status: 0, or 2 on a usage or read error.
`

func cmdWAFReport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("waf report", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		logFile = fs.String("audit-log", "", "")
		route   = fs.String("route", "", "")
		blocked = fs.Bool("blocked", false, "")
		depth   = fs.Int("path-depth", 0, "")
		top     = fs.Int("top", 30, "")
		help    = fs.Bool("help", false, "")
	)
	fs.BoolVar(help, "h", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "rampart waf report: %v\n\n%s", err, wafReportUsage)
		return wafExitError
	}
	if *help {
		_, _ = io.WriteString(stdout, wafReportUsage)
		return 0
	}
	if *logFile == "" || fs.NArg() > 0 || *depth < 0 || *top < 0 {
		fmt.Fprintf(stderr, "rampart waf report: --audit-log FILE is required; --path-depth and --top are 0 or more\n\n%s", wafReportUsage)
		return wafExitError
	}
	var r io.Reader = os.Stdin
	if *logFile != "-" {
		f, err := os.Open(*logFile)
		if err != nil {
			fmt.Fprintf(stderr, "rampart waf report: %v\n", err)
			return wafExitError
		}
		defer f.Close()
		r = f
	}
	s, err := tuning.Read(r, tuning.Filter{Route: *route, Blocked: *blocked, PathDepth: *depth})
	if err != nil {
		fmt.Fprintf(stderr, "rampart waf report: %s: %v\n", *logFile, err)
		return wafExitError
	}
	writeWAFReport(stdout, *logFile, s, *top)
	return 0
}

func writeWAFReport(w io.Writer, name string, s *tuning.Summary, top int) {
	fmt.Fprintf(w, "%s: %d events (%d blocked, %d detected)", name, s.Events, s.Blocked, s.Detected)
	if s.BadLines > 0 {
		fmt.Fprintf(w, "; %d lines are not events", s.BadLines)
	}
	fmt.Fprintln(w)
	if s.Events == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, rc := range s.Routes {
		fmt.Fprintf(w, "\nroute %s (policy %s): %d events (%d blocked, %d detected)\n", printable(rc.Route), printable(rc.Policy), rc.Events, rc.Blocked, rc.Detected)
		fmt.Fprintln(tw, "  hits\trule\tmethods\tpath\ttarget\tmessage")
		n := 0
		for _, g := range s.Groups {
			if g.Route != rc.Route {
				continue
			}
			if top > 0 && n == top {
				fmt.Fprintln(tw, "  ...\t\t\t\t\t")
				break
			}
			n++
			target := g.Target
			if target == "" {
				target = "-"
			}
			fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\t%s\t%s\n", g.Hits, g.RuleID, strings.Join(g.Methods, ","),
				printable(g.Path), printable(target), printable(g.Msg))
		}
		_ = tw.Flush()
	}
	if len(s.NotExcludable) > 0 {
		fmt.Fprint(w, "\nnot excludable (the body could not be inspected; fix the client):")
		ids := make([]int, 0, len(s.NotExcludable))
		for id := range s.NotExcludable {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fmt.Fprintf(w, " %d (%d hits)", id, s.NotExcludable[id])
		}
		fmt.Fprintln(w)
	}
	props, unsafe := tuning.Propose(s.Groups)
	if len(unsafe) > 0 {
		fmt.Fprintln(w, "\nnot proposed (the name matched holds characters an exclusion cannot carry; an")
		fmt.Fprintln(w, "argument, header or cookie name is the client's choice):")
		for _, g := range unsafe {
			fmt.Fprintf(w, "  %d  %s  %s  %s\n", g.RuleID, strings.Join(g.Methods, ","), printable(g.Path), printable(g.Target))
		}
	}
	if len(props) == 0 {
		return
	}
	fmt.Fprintln(w, "\n# Exclusions that would stop the matches above. Review each: it also")
	fmt.Fprintln(w, "# lets through attacks that match only where it applies.")
	_ = tuning.WriteYAML(w, props)
}
