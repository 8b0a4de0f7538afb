package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// env is the set of processes of one soak and where they keep their files.
type env struct {
	dir        string
	configPath string
	ports      ports
	redis      *proc
	upstreams  [numUpstreams]*proc
	rampart    *proc
}

func (e *env) adminURL() string { return fmt.Sprintf("http://127.0.0.1:%d", e.ports.admin) }
func (e *env) webURL() string   { return fmt.Sprintf("http://127.0.0.1:%d", e.ports.web) }

// stop ends every process, Rampart first (no request is in flight by then),
// and reports whether Rampart shut down by itself within the grace period.
func (e *env) stop() (rampartClean bool) {
	rampartClean = true
	if e.rampart != nil {
		rampartClean = e.rampart.stop()
	}
	var wg sync.WaitGroup
	for _, p := range append(e.upstreams[:], e.redis) {
		if p != nil {
			wg.Go(func() { p.stop() })
		}
	}
	wg.Wait()
	return rampartClean
}

// setup builds the binaries and starts Redis, the upstreams and Rampart.
// On error, what was started is left in e for the caller to stop.
func setup(ctx context.Context, e *env, out func(string, ...any)) error {
	redisPath, err := exec.LookPath("redis-server")
	if err != nil {
		return errors.New("redis-server is not installed (apt-get install redis-server)")
	}
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out("building rampart and the demo upstream in %s", e.dir)
	rampartBin, demoBin := filepath.Join(e.dir, "rampart"), filepath.Join(e.dir, "demo")
	if err := build(ctx, root, "./cmd/rampart", rampartBin); err != nil {
		return err
	}
	if err := build(ctx, root, "./examples/demo", demoBin); err != nil {
		return err
	}
	pp, err := freePorts(3 + numUpstreams)
	if err != nil {
		return err
	}
	e.ports = ports{admin: pp[0], web: pp[1], redis: pp[2]}
	copy(e.ports.upstreams[:], pp[3:])

	redisDir := filepath.Join(e.dir, "redis")
	if err := os.Mkdir(redisDir, 0o755); err != nil {
		return err
	}
	e.redis = &proc{name: "redis", path: redisPath, log: filepath.Join(e.dir, "redis.log"), args: []string{
		"--port", strconv.Itoa(e.ports.redis), "--bind", "127.0.0.1", "--dir", redisDir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
	}}
	if err := e.redis.start(); err != nil {
		return err
	}
	for i := range e.upstreams {
		name := fmt.Sprintf("u%d", i)
		e.upstreams[i] = &proc{name: name, path: demoBin, log: filepath.Join(e.dir, name+".log"),
			args: []string{"-addr", fmt.Sprintf("127.0.0.1:%d", e.ports.upstreams[i]), "-name", name}}
		if err := e.upstreams[i].start(); err != nil {
			return err
		}
	}
	if err := waitRedis(ctx, fmt.Sprintf("127.0.0.1:%d", e.ports.redis), redisReadyTimeout); err != nil {
		return err
	}
	for i, port := range e.ports.upstreams {
		if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", port), upstreamReadyTimeout); err != nil {
			return fmt.Errorf("%s: %w", e.upstreams[i].name, err)
		}
	}

	// The config has a directory of its own: Rampart's file watcher
	// debounces every event of the directory, and the logs beside it would
	// hold the reload back while they are being written.
	confDir := filepath.Join(e.dir, "config")
	if err := os.Mkdir(confDir, 0o755); err != nil {
		return err
	}
	e.configPath = filepath.Join(confDir, "rampart.yaml")
	if err := writeConfig(e.configPath, e.ports, 0); err != nil {
		return err
	}
	e.rampart = &proc{name: "rampart", path: rampartBin, log: filepath.Join(e.dir, "rampart.log"),
		args: []string{"run", "--config", e.configPath}}
	if err := e.rampart.start(); err != nil {
		return err
	}
	if err := waitHTTP(ctx, e.adminURL()+"/readyz", rampartReadyTimeout); err != nil {
		return fmt.Errorf("rampart: %w (log: %s)", err, e.rampart.log)
	}
	return waitHTTP(ctx, e.webURL()+"/ping", 5*time.Second)
}

// run runs one soak and prints its report to o.Out. pass is false when a
// check failed; err is for a soak that could not run at all.
func run(ctx context.Context, o options) (pass bool, err error) {
	dir, err := os.MkdirTemp("", "rampart-soak-")
	if err != nil {
		return false, err
	}
	e := &env{dir: dir}
	begin := time.Now()
	printf := func(format string, args ...any) {
		fmt.Fprintf(o.Out, "[%7.1fs] %s\n", time.Since(begin).Seconds(), fmt.Sprintf(format, args...))
	}
	stopped := false
	defer func() {
		if !stopped {
			e.stop()
		}
		if pass && !o.Keep {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(o.Out, "config and logs kept in %s\n", dir)
		}
	}()
	if err := setup(ctx, e, printf); err != nil {
		return false, err
	}
	printf("rampart pid %d on 127.0.0.1:%d (admin %d), upstreams %v, redis %d",
		e.rampart.pid(), e.ports.web, e.ports.admin, e.ports.upstreams, e.ports.redis)
	printf("load: %d workers, %d req/s for %s; faults: an upstream killed every %s (down %s), redis every %s (down %s), a reload every %s",
		o.Workers, o.Rate, o.Duration, o.UpstreamEvery, o.UpstreamDown, o.RedisEvery, o.RedisDown, o.ReloadEvery)

	st := newStats()
	kills := &killLog{}
	f := &faults{o: &o, e: e, kills: kills, event: printf}
	smp := &sampler{e: e, st: st, out: printf}
	ld := newLoader(e.webURL(), o.Workers, o.Rate, st, kills)

	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	smp.take(0)
	var wg sync.WaitGroup
	wg.Go(func() { smp.run(runCtx, o.Sample) })
	wg.Go(func() { f.run(runCtx) })
	wg.Go(func() { ld.run(runCtx) })
	wg.Wait()
	elapsed := time.Since(smp.start)
	smp.take(elapsed) // the final state, after the last request
	final := scrapeMetrics(e.adminURL())
	alive := !e.rampart.exited()
	clean := e.stop()
	stopped = true

	r := &report{o: &o, st: st, f: f, samples: smp.samples, elapsed: elapsed, final: final,
		rampartAlive: alive, rampartClean: clean, logCounts: countLog(e.rampart.log), interrupted: ctx.Err() != nil}
	return r.print(o.Out), nil
}
