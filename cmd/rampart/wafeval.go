package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf/eval"
)

const wafEvalUsage = `usage: rampart waf eval [--config FILE --route NAME | --url URL] [options]

Replays the labelled attack and benign corpus (docs/waf-eval.md) through a
WAF policy and prints what was blocked: attacks by class, by placement and
by encoding, and the benign requests passed, with the false positives and
the rules that refused them.

In process (the default), each request is parsed from its wire form by
fasthttp, its path put in the proxy's normal form (one without is refused,
as the proxy refuses it with 400: that counts as blocked) and inspected by
the route's compiled policy, as the proxy does; no upstream or listener is
needed and no audit log is written. Without
--config the policy is the default one: mode block, paranoia level 1,
the default anomaly threshold, the CRS with Rampart's own rules
(rampart_rules on, the default). With --url the requests go to
a running Rampart over HTTP/1.1: a request answered with Rampart's
refusal (the WAF's, whatever its status, or the proxy's own 400) or a
status of --block-status counts as blocked, and the rules that matched are read from the policy's audit log
when --audit-log names it.

Options:
  --config FILE          the configuration file
  --route NAME           the route whose policy inspects (required with --config)
  --url URL              a running Rampart, http://host:port, instead
  --host HOST            the Host sent with --url (default: the corpus's,
                         ` + eval.DefaultHost + `)
  --block-status LIST    more statuses that mean blocked with --url
                         (default 403)
  --audit-log FILE       with --url: the audit log of the policy evaluated,
                         read after the run for the rules that matched each
                         request (its requests carry X-Request-Id eval-...)
  --classes LIST         attack classes (default ` + "%s" + `;
                         also: redirect)
  --placements LIST      placements (default all: %s)
  --encodings LIST       encodings (default %s;
                         also: pct-u, overlong-utf8)
  --sample N             payloads of a class tried in each placement and
                         encoding (default %d; 0: every payload)
  --seed N               picks the sample (default %d)
  --source S             where the attacks come from: patt (default: the
                         corpus's payloads, placed and encoded), crs (the CRS
                         regression tests of the attack rules, as written)
                         or all
  --crs-paranoia N       with crs: tests of the rules up to this paranoia
                         level (default: the policy's, or 1 with --url)
  --no-benign            attacks only
  --no-attacks           benign requests only (to make an audit log of
                         legitimate traffic for rampart waf report)
  --corpus DIR           a corpus directory laid out as the embedded one
  --markdown FILE        also write the tables as Markdown
  --json FILE            also write the report as JSON
  --cases FILE           also write every case and its outcome, a JSON line
                         each
  --baseline FILE        a JSON report of an earlier run (--json): print a
                         table of its rates beside this run's, as Markdown
                         (also appended to --markdown)
  --fp N                 false positives listed (default 50; -1: all)
  --timeout D            bound on the whole run (default 10m)

Exit status: 0 when the run completed, 2 on a usage, configuration or
network error.
`

func wafEvalHelp() string {
	return fmt.Sprintf(wafEvalUsage, strings.Join(eval.DefaultClasses, ","),
		strings.Join(eval.Placements, ","), strings.Join(eval.Encodings, ","), eval.DefaultSample, eval.DefaultSeed)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func cmdWAFEval(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("waf eval", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		cfgFile  = fs.String("config", "", "")
		route    = fs.String("route", "", "")
		target   = fs.String("url", "", "")
		host     = fs.String("host", "", "")
		auditLog = fs.String("audit-log", "", "")
		blockSt  = fs.String("block-status", "403", "")
		classes  = fs.String("classes", "", "")
		places   = fs.String("placements", "", "")
		encs     = fs.String("encodings", "", "")
		sample   = fs.Int("sample", eval.DefaultSample, "")
		seed     = fs.Uint64("seed", eval.DefaultSeed, "")
		noBenign = fs.Bool("no-benign", false, "")
		noAttack = fs.Bool("no-attacks", false, "")
		source   = fs.String("source", eval.SourcePATT, "")
		crsPL    = fs.Int("crs-paranoia", 0, "")
		corpus   = fs.String("corpus", "", "")
		mdFile   = fs.String("markdown", "", "")
		jsonFile = fs.String("json", "", "")
		casesOut = fs.String("cases", "", "")
		baseline = fs.String("baseline", "", "")
		maxFP    = fs.Int("fp", 50, "")
		timeout  = fs.Duration("timeout", 10*time.Minute, "")
		help     = fs.Bool("help", false, "")
	)
	fs.BoolVar(help, "h", false, "")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "rampart waf eval: "+format+"\n", a...)
		return wafExitError
	}
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "rampart waf eval: %v\n\n%s", err, wafEvalHelp())
		return wafExitError
	}
	if *help {
		_, _ = io.WriteString(stdout, wafEvalHelp())
		return 0
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *sample < 0 {
		return fail("--sample %d: want 0 or more", *sample)
	}
	sel := eval.Selection{Classes: splitList(*classes), Placements: splitList(*places),
		Encodings: splitList(*encs), Sample: *sample, Seed: *seed, NoBenign: *noBenign, NoAttacks: *noAttack,
		Source: *source, CRSParanoia: *crsPL}

	var c *eval.Corpus
	var err error
	if *corpus != "" {
		c, err = eval.Load(os.DirFS(*corpus))
	} else {
		c, err = eval.Embedded()
	}
	if err != nil {
		return fail("%v", err)
	}
	if *crsPL < 0 || *crsPL > 4 {
		return fail("--crs-paranoia %d: want 1 to 4", *crsPL)
	}

	var in eval.Inspector
	var desc string
	var remote *eval.Remote
	switch {
	case *target != "":
		if *cfgFile != "" {
			return fail("--url and --config exclude each other")
		}
		u, err := url.Parse(*target)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return fail("--url %q: want http://host:port", *target)
		}
		addr := u.Host
		if u.Port() == "" {
			addr += ":80"
		}
		var statuses []int
		for _, s := range splitList(*blockSt) {
			n, err := strconv.Atoi(s)
			if err != nil || n < 100 || n > 599 {
				return fail("--block-status %q: want HTTP statuses", *blockSt)
			}
			statuses = append(statuses, n)
		}
		r := &eval.Remote{Addr: addr, Host: *host, BlockStatuses: statuses,
			IDPrefix: fmt.Sprintf("eval-%x-", time.Now().UnixNano())}
		defer r.Close()
		in, desc, remote = r, *target, r
	default:
		if *auditLog != "" {
			return fail("--audit-log goes with --url: in process, the rules are known without it")
		}
		pc, name, routeName, base := &config.WAFPolicy{}, "default", "eval", ""
		desc = "the default policy (mode block, paranoia level 1, the CRS and Rampart's rules)"
		if *cfgFile != "" {
			if *route == "" {
				return fail("--config needs --route NAME")
			}
			cfg, err := config.Load(*cfgFile)
			if err != nil {
				fmt.Fprintln(stderr, err)
				return wafExitError
			}
			rt, err := findRoute(cfg, *route)
			if err != nil {
				return fail("%v", err)
			}
			pc, name, routeName, base = cfg.WAF[rt.WAF], rt.WAF, rt.Name, filepath.Dir(cfg.File)
			desc = fmt.Sprintf("policy %q of route %q (%s)", name, routeName, cfg.File)
		} else if *route != "" {
			return fail("--route needs --config FILE")
		}
		if sel.CRSParanoia == 0 {
			sel.CRSParanoia = pc.ParanoiaLevel
		}
		l, err := eval.NewLocal(name, pc, base, routeName)
		if err != nil {
			return fail("%v", err)
		}
		defer l.Close()
		in = l
	}

	cases, err := c.Cases(sel)
	if err != nil {
		return fail("%v", err)
	}
	start := time.Now()
	results, err := eval.Run(in, cases, eval.Limits{Timeout: *timeout})
	if err != nil {
		return fail("%v", err)
	}
	if remote != nil && *auditLog != "" {
		if err := remote.AttachAudit(results, *auditLog, 10*time.Second); err != nil {
			return fail("%v", err)
		}
	}
	rep := eval.NewReport(desc, sel, results)
	if err := rep.WriteText(stdout, *maxFP); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "%d cases in %v\n", len(results), time.Since(start).Round(time.Millisecond))
	var compare func(io.Writer) error
	if *baseline != "" {
		f, err := os.Open(*baseline)
		if err != nil {
			return fail("%v", err)
		}
		base, err := eval.ReadReport(f)
		f.Close()
		if err != nil {
			return fail("%s: %v", *baseline, err)
		}
		compare = func(w io.Writer) error {
			return rep.WriteComparison(w, base, filepath.Base(*baseline), "this run")
		}
		fmt.Fprintf(stdout, "\ncompared with %s:\n\n", *baseline)
		if err := compare(stdout); err != nil {
			return fail("%v", err)
		}
	}
	for _, out := range []struct {
		file  string
		write func(io.Writer) error
	}{{*mdFile, func(w io.Writer) error {
		if err := rep.WriteMarkdown(w); err != nil || compare == nil {
			return err
		}
		return compare(w)
	}}, {*jsonFile, rep.WriteJSON},
		{*casesOut, func(w io.Writer) error { return eval.WriteCases(w, results) }}} {
		if out.file == "" {
			continue
		}
		f, err := os.Create(out.file)
		if err != nil {
			return fail("%v", err)
		}
		err = out.write(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail("%v", err)
		}
	}
	return 0
}
