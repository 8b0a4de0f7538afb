package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// reloadApplyTimeout bounds the wait for a reload to show on /ping.
const reloadApplyTimeout = 3 * time.Second

// Ways of reloading, taken in turn.
const (
	reloadFile   = iota // rewrite the file; the file watcher reloads
	reloadSIGHUP        // rewrite, then SIGHUP
	reloadAPI           // rewrite, then POST /api/v1/reload
	numReloadWays
)

var reloadNames = [numReloadWays]string{"file watch", "SIGHUP", "POST /api/v1/reload"}

// faults injects the faults on their schedules and counts them.
type faults struct {
	o     *options
	e     *env
	kills *killLog
	event func(format string, args ...any)

	mu            sync.Mutex // guards the fields below
	upKills       int
	upRestarts    int
	redisKills    int
	redisRestarts int
	reloads       [numReloadWays]int
	reloadsSeen   int // reloads whose new variant /ping served in time
	problems      []string
	variant       int // the config variant now in the file
}

func (f *faults) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.event("PROBLEM: %s", msg)
	f.mu.Lock()
	f.problems = append(f.problems, msg)
	f.mu.Unlock()
}

// run runs the three schedules until ctx ends.
func (f *faults) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { f.upstreams(ctx) })
	wg.Go(func() { f.redis(ctx) })
	wg.Go(func() { f.reloader(ctx) })
	wg.Wait()
}

// upstreams kills one upstream with SIGKILL every UpstreamEvery, in turn,
// and starts it again UpstreamDown later.
func (f *faults) upstreams(ctx context.Context) {
	start := time.Now()
	for i := 0; ; i++ {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(i+1)*f.o.UpstreamEvery))) {
			return
		}
		u := f.e.upstreams[i%numUpstreams]
		pid := u.pid()
		// The span is open before the signal: a request that fails because
		// of the kill may be classified before the process is reaped.
		span := f.kills.begin(time.Now())
		err := u.kill()
		f.kills.end(span, time.Now())
		if err != nil {
			f.problem("kill %s: %v", u.name, err)
			continue
		}
		f.event("kill -9 %s (pid %d)", u.name, pid)
		f.mu.Lock()
		f.upKills++
		f.mu.Unlock()
		if !sleepCtx(ctx, f.o.UpstreamDown) {
			return
		}
		if err := u.start(); err != nil {
			f.problem("restart %s: %v", u.name, err)
			continue
		}
		if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/health", f.e.ports.upstreams[i%numUpstreams]), upstreamReadyTimeout); err != nil {
			if ctx.Err() == nil {
				f.problem("restart %s: %v", u.name, err)
			}
			continue
		}
		f.event("restarted %s (pid %d)", u.name, u.pid())
		f.mu.Lock()
		f.upRestarts++
		f.mu.Unlock()
	}
}

// redis kills Redis with SIGKILL every RedisEvery and starts it again
// RedisDown later (empty: the counts start over).
func (f *faults) redis(ctx context.Context) {
	start := time.Now()
	for i := 1; ; i++ {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(i)*f.o.RedisEvery))) {
			return
		}
		r := f.e.redis
		pid := r.pid()
		if err := r.kill(); err != nil {
			f.problem("kill redis: %v", err)
			continue
		}
		f.event("kill -9 redis (pid %d)", pid)
		f.mu.Lock()
		f.redisKills++
		f.mu.Unlock()
		if !sleepCtx(ctx, f.o.RedisDown) {
			return
		}
		if err := r.start(); err != nil {
			f.problem("restart redis: %v", err)
			continue
		}
		if err := waitRedis(ctx, fmt.Sprintf("127.0.0.1:%d", f.e.ports.redis), redisReadyTimeout); err != nil {
			if ctx.Err() == nil {
				f.problem("restart redis: %v", err)
			}
			continue
		}
		f.event("restarted redis (pid %d)", r.pid())
		f.mu.Lock()
		f.redisRestarts++
		f.mu.Unlock()
	}
}

// reloader rewrites the config every ReloadEvery with the other variant,
// triggers the reload in each of the three ways in turn, and checks that
// the new variant is served.
func (f *faults) reloader(ctx context.Context) {
	c := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	for n := 0; ; n++ {
		if !sleepCtx(ctx, time.Until(start.Add(time.Duration(n+1)*f.o.ReloadEvery))) {
			return
		}
		f.mu.Lock()
		f.variant = 1 - f.variant
		v := f.variant
		f.mu.Unlock()
		if err := writeConfig(f.e.configPath, f.e.ports, v); err != nil {
			f.problem("write config: %v", err)
			return
		}
		way := n % numReloadWays
		switch way {
		case reloadSIGHUP:
			if err := f.e.rampart.signal(syscall.SIGHUP); err != nil {
				f.problem("SIGHUP: %v", err)
				continue
			}
		case reloadAPI:
			if err := apiReload(c, f.e.adminURL()); err != nil {
				f.problem("POST /api/v1/reload: %v", err)
				continue
			}
		}
		f.mu.Lock()
		f.reloads[way]++
		f.mu.Unlock()
		want := pingA
		if v == 1 {
			want = pingB
		}
		if !waitPing(ctx, c, f.e.webURL()+"/ping", want) {
			if ctx.Err() == nil {
				f.problem("reload %d (%s, variant %d) not served within %s", n+1, reloadNames[way], v, reloadApplyTimeout)
			}
			continue
		}
		f.mu.Lock()
		f.reloadsSeen++
		f.mu.Unlock()
	}
}

// apiReload asks the admin API to reload; 200 is success (changed or not).
func apiReload(c *http.Client, admin string) error {
	resp, err := c.Post(admin+"/api/v1/reload", "application/json", nil) // no token: JSON, as the admin API asks
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var r struct {
		Changed bool `json:"changed"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("answer %q: %w", b, err)
	}
	return nil
}

// waitPing polls url until it answers want, for reloadApplyTimeout.
func waitPing(ctx context.Context, c *http.Client, url, want string) bool {
	deadline := time.Now().Add(reloadApplyTimeout)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(b) == want {
				return true
			}
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return false
		}
	}
	return false
}
