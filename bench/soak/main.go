// Command soak runs Rampart for a while under steady load and faults, and
// checks that it neither leaks nor fails a request it could have served
// (`make soak`, issue 9).
//
// It builds cmd/rampart and the demo upstream (examples/demo) into a
// temporary directory and starts, as real processes: three demo upstreams, a redis-server and
// Rampart. Rampart's config has one listener and three routes: "/" through
// the CRS (paranoia 1, blocking) with a rate limit kept in Redis
// (on_store_error: allow) to a least_conn pool of the three upstreams
// (active and passive health checks, retries: 1); "/mem/" to the same pool
// with a memory rate limit; "/ping" answered by Rampart itself. Both limits
// are far above the load.
//
// The load is a fixed number of workers, each on a keep-alive connection,
// paced to a fixed total rate: GET and POST (small JSON bodies, some to
// /slow so that they are in flight when an upstream dies), GET on the other
// two routes, and a few attacks the WAF must refuse with 403. Meanwhile, on
// fixed schedules: an upstream is killed with SIGKILL and restarted a few
// seconds later, each in turn; Redis is killed and restarted (empty); the config file is rewritten with the other of two
// variants every few seconds and reloaded by the file watcher, by SIGHUP and
// by POST /api/v1/reload in turn, each reload checked on /ping.
//
// Every failure is classified by cause (connection error, timeout, 502,
// 503, 504, other status, wrong body). A 502 to a non-idempotent request
// that was in flight while an upstream was being killed is unavoidable: the
// proxy cannot know whether the target applied it, so it must not send it
// again. Those are counted apart; any other failure fails the soak.
//
// Every sample interval it records Rampart's RSS (VmRSS), its goroutines
// (go_goroutines on the admin listener) and the request rate. The soak
// passes when there is no avoidable failure, no fault-handling problem, and
// both RSS and goroutines level off: the maximum over the last third of the
// samples is at most the maximum over the middle third plus a tolerance
// (see leveled). Exit status 0 on a pass, 1 otherwise, 2 on a setup error.
//
//	go run ./bench/soak -duration 10m
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the soak's knobs. defaultOptions is `make soak`;
// shortOptions the CI run.
type options struct {
	Duration time.Duration
	Sample   time.Duration // how often RSS and goroutines are sampled
	Workers  int
	Rate     int // requests per second, all workers together

	UpstreamEvery time.Duration // an upstream is killed this often
	UpstreamDown  time.Duration // and restarted this much later
	RedisEvery    time.Duration
	RedisDown     time.Duration
	ReloadEvery   time.Duration

	// The leveling rule: the last third's maximum may exceed the middle
	// third's by this fraction plus this absolute slack.
	LevelFraction  float64
	RSSSlackMiB    float64
	GoroutineSlack int

	Keep bool      // keep the temporary directory (logs, config) after a pass
	Out  io.Writer // the report
}

func defaultOptions() options {
	return options{
		Duration:       10 * time.Minute,
		Sample:         10 * time.Second,
		Workers:        16,
		Rate:           1000,
		UpstreamEvery:  15 * time.Second,
		UpstreamDown:   4 * time.Second,
		RedisEvery:     40 * time.Second,
		RedisDown:      5 * time.Second,
		ReloadEvery:    3 * time.Second,
		LevelFraction:  0.10,
		RSSSlackMiB:    8,
		GoroutineSlack: 10,
		Out:            os.Stdout,
	}
}

// shortOptions is the CI soak: the same run, shorter, with the faults
// closer together. Over 20 s the heap is still growing towards its GC
// target, so the RSS tolerance is wider.
func shortOptions() options {
	o := defaultOptions()
	o.Duration = 20 * time.Second
	o.Sample = 2 * time.Second
	o.Rate = 600
	o.UpstreamEvery = 4 * time.Second
	o.UpstreamDown = 1500 * time.Millisecond
	o.RedisEvery = 7 * time.Second
	o.RedisDown = 2 * time.Second
	o.ReloadEvery = time.Second
	o.LevelFraction = 0.25
	o.RSSSlackMiB = 16
	return o
}

func main() {
	// -short picks the preset; the other flags then override it.
	o := defaultOptions()
	for _, a := range os.Args[1:] {
		if a == "-short" || a == "--short" || a == "-short=true" || a == "--short=true" {
			o = shortOptions()
		}
	}
	flag.Bool("short", false, "the CI soak: 20 s, faults closer together (other flags override it)")
	flag.DurationVar(&o.Duration, "duration", o.Duration, "how long the load runs")
	flag.DurationVar(&o.Sample, "sample", o.Sample, "how often RSS, goroutines and the rate are sampled")
	flag.IntVar(&o.Workers, "workers", o.Workers, "concurrent clients, one keep-alive connection each")
	flag.IntVar(&o.Rate, "rate", o.Rate, "total requests per second")
	flag.DurationVar(&o.UpstreamEvery, "upstream-every", o.UpstreamEvery, "kill -9 an upstream this often (in turn)")
	flag.DurationVar(&o.UpstreamDown, "upstream-down", o.UpstreamDown, "restart a killed upstream after this long")
	flag.DurationVar(&o.RedisEvery, "redis-every", o.RedisEvery, "kill -9 Redis this often")
	flag.DurationVar(&o.RedisDown, "redis-down", o.RedisDown, "restart Redis after this long")
	flag.DurationVar(&o.ReloadEvery, "reload-every", o.ReloadEvery, "reload the config this often")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (config, logs) even on a pass")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pass, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !pass {
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.Duration <= 0 || o.Duration > 24*time.Hour:
		return fmt.Errorf("-duration %s: want more than 0 and at most 24h", o.Duration)
	case o.Sample <= 0 || o.Duration/o.Sample < 3:
		return fmt.Errorf("-sample %s: want at least three samples in -duration %s", o.Sample, o.Duration)
	case o.Workers < 1 || o.Workers > 1024:
		return fmt.Errorf("-workers %d: want 1 to 1024", o.Workers)
	case o.Rate < o.Workers || o.Rate > 100000:
		return fmt.Errorf("-rate %d: want -workers (%d) to 100000", o.Rate, o.Workers)
	case o.UpstreamEvery <= o.UpstreamDown || o.UpstreamDown <= 0:
		return fmt.Errorf("-upstream-every %s must exceed -upstream-down %s, which must be positive", o.UpstreamEvery, o.UpstreamDown)
	case o.RedisEvery <= o.RedisDown || o.RedisDown <= 0:
		return fmt.Errorf("-redis-every %s must exceed -redis-down %s, which must be positive", o.RedisEvery, o.RedisDown)
	case o.ReloadEvery <= 0:
		return fmt.Errorf("-reload-every %s: want more than 0", o.ReloadEvery)
	}
	return nil
}
