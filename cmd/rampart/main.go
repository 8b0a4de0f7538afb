// Command rampart is the Rampart reverse proxy: `rampart run --config FILE`,
// `rampart validate --config FILE` and `rampart version`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/proxy"
	"github.com/rampart-proxy/rampart/ratelimit"
	"github.com/rampart-proxy/rampart/waf"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  rampart run --config FILE [--log-level LEVEL] [--cpuprofile FILE]
                                   serve the configuration in FILE
  rampart validate --config FILE   check FILE; exit 0, or 1 listing every error
  rampart healthcheck [--config FILE | --address HOST:PORT]
                                   ask the admin listener's /healthz; exit 0 when alive
  rampart waf test --config FILE --route NAME [curl-like request]
                                   run one request through the route's WAF policy and
                                   print the verdict, the anomaly score and the matched
                                   rules; exit 0 forwarded, 1 blocked, 2 error
                                   (rampart waf --help for the request options)
  rampart waf eval [--config FILE --route NAME | --url URL]
                                   replay the labelled attack and benign corpus through
                                   a WAF policy; print block and pass rates
                                   (rampart waf eval --help)
  rampart waf report --audit-log FILE
                                   summarize a WAF audit log by route, path and parameter
                                   and print the exclusions that would stop its matches
  rampart version                  print the version

rampart COMMAND --help lists the flags of COMMAND.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(args[1:], stdout, stderr)
	case "waf":
		return cmdWAF(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "rampart %s\n%s\n", version, waf.CorazaBuild())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "rampart: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

// Per-command help: what the command does, then its flags.
const (
	runHelp = `usage: rampart run --config FILE [flags]

Serve the configuration in FILE. SIGHUP (or a change of the file) reloads
it; SIGTERM or SIGINT shuts down gracefully (shutdown.grace_period). Logs
are JSON lines on standard error.

flags:
`
	validateHelp = `usage: rampart validate --config FILE

Check FILE as run would build it (WAF rules compiled, TLS files read,
nothing bound) and print "FILE: ok", or every error with its line; exit 0
when valid, 1 when not, 2 on a usage error. Warnings (a configuration
that routes nothing) go to standard error and do not change the exit code.

flags:
`
)

// parseFlags parses a command's flags. code is -1 to go on, or the exit
// code: 0 after --help (the command's help on stdout), 2 on a usage error.
func parseFlags(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (code int) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // a usage error prints its message only; --help prints below
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		_, _ = io.WriteString(stdout, help)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "(rampart %s --help lists the flags)\n", fs.Name())
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "rampart %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2
	}
	return -1
}

// needConfig reports a missing --config.
func needConfig(name, path string, stderr io.Writer) bool {
	if path == "" {
		fmt.Fprintf(stderr, "rampart %s: --config FILE is required\n", name)
		return false
	}
	return true
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "", "the YAML configuration file")
	if code := parseFlags(fs, validateHelp, args, stdout, stderr); code >= 0 {
		return code
	}
	if !needConfig("validate", *path, stderr) {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := proxy.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *path, err)
		return 1
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var path string
	fs.StringVar(&path, "config", "", "the YAML configuration file")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	lv := fs.String("log-level", "info", "the least severe log lines written: debug, info, warn or error")
	if code := parseFlags(fs, runHelp, args, stdout, stderr); code >= 0 {
		return code
	}
	if !needConfig("run", path, stderr) {
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*lv)); err != nil {
		fmt.Fprintf(stderr, "rampart run: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	tuneGC(log)
	ratelimit.SetRedisLogger(log)
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			log.Error("cpu profile", "error", err.Error())
			return 1
		}
		defer stop()
	}
	// Signals are caught from before the listeners open: a SIGHUP or SIGTERM
	// that arrives while Rampart starts must not take the default action
	// (ending the process at once). They wait here and are handled once
	// Rampart runs.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	srv, err := proxy.New(cfg, log, proxy.WithVersion(version))
	if err != nil {
		log.Error("cannot build the configuration", "error", err.Error())
		return 1
	}
	if err := srv.Start(); err != nil {
		log.Error("cannot start", "error", err.Error())
		return 1
	}
	if err := srv.WatchConfig(); err != nil {
		log.Warn("not watching the config file; reload with SIGHUP", "error", err.Error())
	}
	log.Info("rampart started", "version", version, "config", path, "waf", waf.CorazaBuild())
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			log.Info("SIGHUP received; reloading the configuration")
			_, _ = srv.ReloadFromFile() // a failure is logged; the running config stays
			continue
		}
		break
	}
	grace := cfg.Shutdown.GracePeriod.Std()
	log.Info("shutting down", "grace_period", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Error("shutdown", "error", err.Error())
		return 1
	}
	log.Info("stopped")
	return 0
}

// cmdHealthcheck asks a running Rampart's admin listener whether it is
// alive, so that a container image needs no shell or curl for its
// HEALTHCHECK.
func cmdHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	path := fs.String("config", "/etc/rampart/rampart.yaml", "the config file whose admin.address to ask")
	addr := fs.String("address", "", "the admin listener's host:port (instead of --config)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if code := parseFlags(fs, healthcheckHelp, args, stdout, stderr); code >= 0 {
		return code
	}
	if *addr == "" {
		cfg, err := config.Load(*path)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if cfg.Admin == nil {
			fmt.Fprintf(stderr, "rampart healthcheck: %s has no admin listener\n", *path)
			return 1
		}
		*addr = cfg.Admin.Address
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get("http://" + *addr + "/healthz")
	if err != nil {
		fmt.Fprintf(stderr, "rampart healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "rampart healthcheck: /healthz answered %s\n", resp.Status)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

const healthcheckHelp = `usage: rampart healthcheck [--config FILE | --address HOST:PORT]

Ask a running Rampart's admin listener for /healthz (for a container's
HEALTHCHECK, which needs no shell or curl then); exit 0 when it answers
200, 1 otherwise.

flags:
`

// cpuProfile is the --cpuprofile flag of run.
var cpuProfile string

// startCPUProfile profiles until the returned stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// tuneGC raises the GC target unless GOGC is set: the proxy's live heap is
// small, and collecting at 100% growth costs CPU on every burst. Under a
// container's memory limit (a cgroup's) it also sets a soft memory limit of
// 90% of it, unless GOMEMLIMIT is set (or AUTOMEMLIMIT=off): with GOGC at
// 400 the heap may grow to five times its live size between collections,
// and a burst of bodies held for inspection (waf_buffer_limit) would
// otherwise take a container past its limit before the GC ran.
func tuneGC(log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	limit, err := memlimit.Set(memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case err != nil:
		// No cgroup (a bare host) or none readable: no limit to keep to.
		log.Debug("no container memory limit found; GOMEMLIMIT left as it is", "error", err.Error())
	case limit > 0 && limit < math.MaxInt64:
		log.Info("soft memory limit", "gomemlimit_bytes", limit)
	}
}
