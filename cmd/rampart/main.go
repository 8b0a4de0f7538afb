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
  rampart run --config FILE        serve the configuration in FILE
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
		return cmdRun(args[1:], stderr)
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

// configFlag parses the --config flag shared by run and validate.
func configFlag(name string, args []string, stderr io.Writer) (path string, level slog.Level, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&path, "config", "", "the YAML configuration file")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	lv := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return "", 0, false
	}
	if path == "" {
		fmt.Fprintf(stderr, "rampart %s: --config FILE is required\n", name)
		return "", 0, false
	}
	if err := level.UnmarshalText([]byte(*lv)); err != nil {
		fmt.Fprintf(stderr, "rampart %s: --log-level: %v\n", name, err)
		return "", 0, false
	}
	return path, level, true
}

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	path, _, ok := configFlag("validate", args, stderr)
	if !ok {
		return 2
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := proxy.Check(cfg); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	path, level, ok := configFlag("run", args, stderr)
	if !ok {
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
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/rampart/rampart.yaml", "the config file whose admin.address to ask")
	addr := fs.String("address", "", "the admin listener's host:port (instead of --config)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
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
