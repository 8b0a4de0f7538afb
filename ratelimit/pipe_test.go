package ratelimit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// Tests of the pipe (pipe.go) against a real redis-server, and of its RESP
// helpers (resp.go) without one.

// pipeClient returns NewRedisClient's client for cfg, on s, with a 1 s
// timeout unless cfg has one; closed when t ends.
func pipeClient(t testing.TB, s *redisServer, cfg config.Redis) *pipedClient {
	t.Helper()
	cfg.Address = s.Addr
	if cfg.Timeout == 0 {
		cfg.Timeout = config.Duration(time.Second)
	}
	c, err := NewRedisClient(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pc, ok := c.(*pipedClient)
	if !ok {
		t.Fatalf("NewRedisClient for one server returned %T; want *pipedClient", c)
	}
	return pc
}

// scriptRuns is how many script calls (EVAL and EVALSHA) the server has run
// since its statistics were last reset.
func scriptRuns(t testing.TB, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(info) {
		name, stats, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name != "cmdstat_eval" && name != "cmdstat_evalsha" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("commandstats %q: %v", line, err)
		}
		n += v
	}
	return n
}

func resetStats(t testing.TB, c redis.UniversalClient) {
	t.Helper()
	if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

// atOnce runs f(0) ... f(n-1) on n goroutines released together and waits
// for them: the decisions are under way at one moment, as under load.
func atOnce(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// waitingCalls is how many calls p's connection has sent or queued and not
// answered yet.
func waitingCalls(p *pipe) int {
	p.mu.Lock()
	pc := p.cur
	p.mu.Unlock()
	if pc == nil {
		return 0
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return len(pc.waiting) - pc.head
}

// waitUntil polls cond until it holds, failing t after 5 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// outcome is one decision's result and how long it took.
type outcome struct {
	d    Decision
	err  error
	took time.Duration
}

// decideAtOnce makes n decisions with r at once, key(i) and now(i) for the
// i-th (now nil: time.Now()).
func decideAtOnce(r *Redis, n int, key func(i int) string, now func(i int) time.Time) []outcome {
	out := make([]outcome, n)
	atOnce(n, func(i int) {
		at := time.Now()
		if now != nil {
			at = now(i)
		}
		start := time.Now()
		d, err := r.Allow(context.Background(), []byte(key(i)), at)
		out[i] = outcome{d, err, time.Since(start)}
	})
	return out
}

func sameKey(k string) func(int) string { return func(int) string { return k } }

// TestPipeOneKeyBurstExact: many decisions on one key at once, with the
// server's clock and a rate that refills nothing during the test, pass
// exactly the burst, each remaining count given once; and fewer script calls
// than decisions carried them.
func TestPipeOneKeyBurstExact(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	tests := []struct {
		name         string
		calls, burst int
	}{
		{"burst 1", 200, 1},
		{"burst 10", 200, 10},
		{"burst beyond one script call", 200, 150}, // maxBatch is 128
		{"everything passes", 200, 200},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, "p", 1, time.Hour, tt.burst)
			r := NewRedis(c, p, RedisOptions{KeyPrefix: fmt.Sprintf("t%d:", i)})
			resetStats(t, c)
			remaining := map[int64]int{}
			allowed := 0
			for j, o := range decideAtOnce(r, tt.calls, sameKey("198.51.100.7"), nil) {
				switch {
				case o.err != nil:
					t.Fatalf("decision %d: %v", j, o.err)
				case o.d.Allowed:
					allowed++
					remaining[o.d.Remaining]++
				case o.d.Remaining != 0 || o.d.RetryAfter <= 59*time.Minute || o.d.RetryAfter > time.Hour:
					t.Errorf("refusal %d: %+v; want remaining 0, retry after just under 1h", j, o.d)
				}
			}
			if allowed != tt.burst {
				t.Errorf("allowed %d of %d; want exactly %d", allowed, tt.calls, tt.burst)
			}
			for rem := range int64(tt.burst) {
				if remaining[rem] != 1 {
					t.Errorf("remaining %d given %d times; want once", rem, remaining[rem])
				}
			}
			runs := scriptRuns(t, c)
			if runs < 1 || runs >= tt.calls {
				t.Errorf("%d script calls for %d decisions at once; want at least 1 and fewer than %d", runs, tt.calls, tt.calls)
			}
			t.Logf("%d decisions in %d script calls", tt.calls, runs)
		})
	}
}

// TestPipeDistinctKeysExact: decisions on many keys at once each pass
// exactly their own burst.
func TestPipeDistinctKeysExact(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	const keys, perKey, burst = 64, 5, 3
	r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, burst), RedisOptions{})
	resetStats(t, c)
	key := func(i int) string { return "203.0.113." + strconv.Itoa(i%keys) }
	allowed := make([]int, keys)
	remaining := make([]map[int64]int, keys)
	for i, o := range decideAtOnce(r, keys*perKey, key, nil) {
		if o.err != nil {
			t.Fatalf("decision %d: %v", i, o.err)
		}
		if o.d.Allowed {
			k := i % keys
			allowed[k]++
			if remaining[k] == nil {
				remaining[k] = map[int64]int{}
			}
			remaining[k][o.d.Remaining]++
		}
	}
	for k := range keys {
		if allowed[k] != burst || len(remaining[k]) != burst {
			t.Errorf("key %s: allowed %d of %d, remaining counts %v; want %d, each of 0..%d once",
				key(k), allowed[k], perKey, remaining[k], burst, burst-1)
		}
	}
	if runs := scriptRuns(t, c); runs >= keys*perKey {
		t.Errorf("%d script calls for %d decisions at once; want fewer", runs, keys*perKey)
	}
}

// TestPipePoliciesInOneBatch: three policies with their own intervals,
// tolerances and prefixes, one of them on the caller's clock, decided at
// once on one client: each passes its own burst, answers with its own
// arithmetic, and stores its own TAT and expiry.
func TestPipePoliciesInOneBatch(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	tests := []struct {
		r          *Redis
		key        string
		retryAfter time.Duration // of a refusal, exactly with the caller's clock, else just under
		ttl        time.Duration // of the stored key, about
	}{
		{NewRedis(c, mustPolicy(t, "a", 1, time.Hour, 5), RedisOptions{KeyPrefix: "x:"}), "x:a:{k}", time.Hour, 5 * time.Hour},
		{NewRedis(c, mustPolicy(t, "b", 2, time.Hour, 7), RedisOptions{KeyPrefix: "y:"}), "y:b:{k}", 30 * time.Minute, 210 * time.Minute},
		{NewRedis(c, mustPolicy(t, "c", 1, time.Minute, 4), RedisOptions{KeyPrefix: "z:", ClientClock: true}), "z:c:{k}", time.Minute, 4 * time.Minute},
	}
	const perPolicy = 60
	n := len(tests) * perPolicy
	resetStats(t, c)
	out := make([]outcome, n)
	atOnce(n, func(i int) { // the policies interleaved
		d, err := tests[i%len(tests)].r.Allow(context.Background(), []byte("k"), t0)
		out[i] = outcome{d: d, err: err}
	})
	ctx := context.Background()
	for j, tt := range tests {
		p := tt.r.policy
		allowed, remaining := 0, map[int64]int{}
		for i := j; i < n; i += len(tests) {
			o := out[i]
			switch {
			case o.err != nil:
				t.Fatalf("policy %s: %v", p.Name(), o.err)
			case o.d.Limit != p.Burst():
				t.Errorf("policy %s: limit %d; want %d", p.Name(), o.d.Limit, p.Burst())
			case o.d.Allowed:
				allowed++
				remaining[o.d.Remaining]++
			case tt.r.clientClock && o.d.RetryAfter != tt.retryAfter:
				t.Errorf("policy %s refusal: retry after %v; want %v", p.Name(), o.d.RetryAfter, tt.retryAfter)
			case o.d.RetryAfter <= tt.retryAfter-time.Minute || o.d.RetryAfter > tt.retryAfter:
				t.Errorf("policy %s refusal: retry after %v; want just under %v", p.Name(), o.d.RetryAfter, tt.retryAfter)
			}
		}
		if allowed != int(p.Burst()) || len(remaining) != int(p.Burst()) {
			t.Errorf("policy %s: allowed %d of %d, remaining counts %v; want %d, each of 0..%d once",
				p.Name(), allowed, perPolicy, remaining, p.Burst(), p.Burst()-1)
		}
		ttl, err := c.PTTL(ctx, tt.key).Result()
		if err != nil || ttl <= tt.ttl-time.Minute || ttl > tt.ttl {
			t.Errorf("PTTL %s = %v, %v; want just under %v", tt.key, ttl, err, tt.ttl)
		}
	}
	// The caller's clock is stored exactly: t0 plus the burst's 4 minutes.
	want := strconv.FormatInt(t0.Add(4*time.Minute).UnixMicro(), 10)
	if got, err := c.Get(ctx, "z:c:{k}").Result(); err != nil || got != want {
		t.Errorf("TAT of z:c:{k} = %q, %v; want %s", got, err, want)
	}
	if runs := scriptRuns(t, c); runs >= n {
		t.Errorf("%d script calls for %d decisions at once; want fewer", runs, n)
	}
}

// evalRaw sends calls as one script call, encoded by appendScriptCall, on a
// connection of its own to addr, and parses the reply into the calls as the
// pipe's reader does: the batch is exactly calls, in that order.
func evalRaw(t *testing.T, addr string, calls []*pipeCall) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	var pols [][]byte
	if _, err := nc.Write(appendScriptCall(nil, calls, true, &pols)); err != nil {
		t.Fatal(err)
	}
	var reply []byte
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("reading the reply: %v", err)
		}
		reply = append(reply, buf[:n]...)
		size, err := replySize(reply)
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			if size != len(reply) {
				t.Fatalf("%d bytes after the reply", len(reply)-size)
			}
			break
		}
	}
	if err := parsePairs(reply, calls); err != nil {
		t.Fatal(err)
	}
}

// rawCall is r's decision on key at now, to send with evalRaw.
func rawCall(r *Redis, key string, now time.Time) *pipeCall {
	return &pipeCall{
		key:    []byte(r.key([]byte(key))),
		policy: r.policyRESP,
		now:    strconv.AppendInt(nil, now.UnixMicro(), 10),
	}
}

// TestPipeScriptCallIsSequential: with the callers' clocks, one script call
// deciding the same key many times, at various times, among other keys and
// policies, decides exactly like the same calls made one by one.
func TestPipeScriptCallIsSequential(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	t.Run("burst then refill", func(t *testing.T) {
		r := NewRedis(c, mustPolicy(t, "p", 10, time.Second, 3), RedisOptions{ClientClock: true})
		other := NewRedis(c, mustPolicy(t, "q", 1, time.Second, 1), RedisOptions{ClientClock: true})
		var calls []*pipeCall
		for _, st := range burstThenRefill {
			calls = append(calls, rawCall(r, "k", t0.Add(st.at)), rawCall(other, "k", t0.Add(st.at)))
		}
		evalRaw(t, s.Addr, calls)
		for i, st := range burstThenRefill {
			v := calls[2*i].vals
			d := r.policy.decision(v[0] == 1, v[1])
			got := step{st.at, d.Allowed, d.Remaining, d.RetryAfter, d.Reset}
			if got != st {
				t.Errorf("step %d at %v: got allowed=%v remaining=%d retryAfter=%v reset=%v; want %v %d %v %v",
					i, st.at, got.allowed, got.remaining, got.retryAfter, got.reset, st.allowed, st.remaining, st.retryAfter, st.reset)
			}
		}
	})
	t.Run("keys and policies interleaved", func(t *testing.T) {
		rnd := rand.New(rand.NewPCG(3, 4))
		stores := []*Redis{
			NewRedis(c, mustPolicy(t, "p1", 10, time.Second, 3), RedisOptions{KeyPrefix: "i:", ClientClock: true}),
			NewRedis(c, mustPolicy(t, "p2", 1, time.Second, 5), RedisOptions{KeyPrefix: "i:", ClientClock: true}),
		}
		mems := []*Memory{NewMemory(stores[0].policy, 0), NewMemory(stores[1].policy, 0)}
		type call struct {
			policy int
			key    string
			now    time.Time
		}
		var seq []call
		var calls []*pipeCall
		now := t0
		for range maxBatch {
			now = now.Add(time.Duration(rnd.IntN(4)) * 20 * time.Millisecond)
			cl := call{rnd.IntN(2), []string{"a", "b", "c"}[rnd.IntN(3)], now}
			seq = append(seq, cl)
			calls = append(calls, rawCall(stores[cl.policy], cl.key, cl.now))
		}
		evalRaw(t, s.Addr, calls)
		for i, cl := range seq {
			want, _ := mems[cl.policy].Allow(context.Background(), []byte(cl.key), cl.now)
			v := calls[i].vals
			if got := stores[cl.policy].policy.decision(v[0] == 1, v[1]); got != want {
				t.Errorf("call %d (policy %d, key %s, +%v): %+v; want %+v", i, cl.policy, cl.key, cl.now.Sub(t0), got, want)
			}
		}
	})
}

// TestPipeSameKeyClientClock: through the pipe, with the callers' clocks,
// decisions on one key at one instant batched together give the decisions
// the memory store gives one by one (in some order: the batch's).
func TestPipeSameKeyClientClock(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	p := mustPolicy(t, "p", 1, time.Hour, 3)
	r := NewRedis(c, p, RedisOptions{ClientClock: true})
	const rounds, n = 10, 8
	byOutcome := func(a, b Decision) int {
		return cmp.Or(compareBool(a.Allowed, b.Allowed), cmp.Compare(a.Remaining, b.Remaining),
			cmp.Compare(a.Reset, b.Reset), cmp.Compare(a.RetryAfter, b.RetryAfter))
	}
	resetStats(t, c)
	for round := range rounds {
		key := "k" + strconv.Itoa(round)
		m := NewMemory(p, 0)
		want := make([]Decision, n)
		for i := range want {
			want[i], _ = m.Allow(context.Background(), []byte(key), t0)
		}
		var got []Decision
		for i, o := range decideAtOnce(r, n, sameKey(key), func(int) time.Time { return t0 }) {
			if o.err != nil {
				t.Fatalf("round %d decision %d: %v", round, i, o.err)
			}
			got = append(got, o.d)
		}
		slices.SortFunc(got, byOutcome)
		slices.SortFunc(want, byOutcome)
		if !slices.Equal(got, want) {
			t.Errorf("round %d: decisions %+v; want %+v", round, got, want)
		}
	}
	if runs := scriptRuns(t, c); runs >= rounds*n {
		t.Errorf("%d script calls for %d decisions; want some batched", runs, rounds*n)
	}
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// authServer is a redis-server with a password for the default user and an
// ACL user alice with another.
func authServer(t *testing.T) *redisServer {
	return startRedis(t, "--requirepass", "s3cret", "--user", "alice", "on", ">alicepw", "~*", "+@all")
}

// TestPipeHandshake: AUTH (a password, an ACL user) and SELECT: decisions
// work and their keys are in db 3.
func TestPipeHandshake(t *testing.T) {
	s := authServer(t)
	tests := []struct {
		name, user, password string
	}{
		{"password", "", "s3cret"},
		{"acl user", "alice", "alicepw"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pipeClient(t, s, config.Redis{Username: tt.user, Password: tt.password, DB: 3})
			r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{KeyPrefix: tt.name + ":"})
			for i, want := range []bool{true, true, false} {
				d, err := r.allowPiped(ctx, []byte("k"), time.Now())
				if err != nil {
					t.Fatalf("decision %d: %v", i, err)
				}
				if d.Allowed != want {
					t.Errorf("decision %d: allowed = %v; want %v", i, d.Allowed, want)
				}
			}
			key := tt.name + ":p:{k}"
			for _, db := range []int{3, 0} {
				check := redis.NewClient(&redis.Options{Addr: s.Addr, Username: tt.user, Password: tt.password, DB: db})
				n, err := check.Exists(ctx, key).Result()
				check.Close()
				want := int64(0)
				if db == 3 {
					want = 1
				}
				if err != nil || n != want {
					t.Errorf("EXISTS %s in db %d = %d, %v; want %d", key, db, n, err, want)
				}
			}
		})
	}
}

// TestPipeHandshakeErrors: a refused AUTH or SELECT, or no AUTH where one is
// needed, fails each decision at once with the server's word for it.
func TestPipeHandshakeErrors(t *testing.T) {
	s := authServer(t)
	const timeout = time.Second
	tests := []struct {
		name string
		cfg  config.Redis
		want string
	}{
		{"wrong password", config.Redis{Password: "nope"}, "WRONGPASS"},
		{"wrong user password", config.Redis{Username: "alice", Password: "s3cret"}, "WRONGPASS"},
		{"unknown user", config.Redis{Username: "bob", Password: "s3cret"}, "WRONGPASS"},
		{"no password", config.Redis{}, "NOAUTH"},
		{"db out of range", config.Redis{Password: "s3cret", DB: 99}, "DB index is out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Timeout = config.Duration(timeout)
			r := NewRedis(pipeClient(t, s, tt.cfg), mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{Timeout: timeout})
			for i := range 2 { // the pipe does not get stuck on it either
				start := time.Now()
				_, err := r.Allow(context.Background(), []byte("k"), time.Now())
				if took := time.Since(start); took >= timeout {
					t.Errorf("decision %d failed after %v; want at once", i, took)
				}
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("decision %d: err = %v; want one naming %q", i, err, tt.want)
				}
			}
		})
	}
}

// TestPipeScriptErrorScope: a script error (the key holds a hash) fails the
// calls of that script call, costs the others in it nothing, and leaves the
// connection in use.
func TestPipeScriptErrorScope(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	const burst = 5
	r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, burst), RedisOptions{KeyPrefix: "t:"})
	ctx := context.Background()
	if err := c.HSet(ctx, "t:p:{bad}", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Allow(ctx, []byte("bad"), time.Now()); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("decision on a hash: err = %v; want WRONGTYPE", err)
	}
	conn := c.pipe.cur
	if d, err := r.Allow(ctx, []byte("good"), time.Now()); err != nil || !d.Allowed {
		t.Fatalf("next decision on another key: %+v, %v; want allowed", d, err)
	}

	// The bad key among many good ones at once: the good ones in its
	// script call fail with it and use nothing of their budget.
	const n = 40
	out := decideAtOnce(r, n+1, func(i int) string {
		if i == n {
			return "bad"
		}
		return "shared"
	}, nil)
	if err := out[n].err; err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("decision on a hash among others: err = %v; want WRONGTYPE", err)
	}
	allowed, failed := 0, 0
	for _, o := range out[:n] {
		switch {
		case o.err != nil && !strings.Contains(o.err.Error(), "WRONGTYPE"):
			t.Errorf("decision on a good key: %v; want a decision or WRONGTYPE", o.err)
		case o.err != nil:
			failed++
		case o.d.Allowed:
			allowed++
		}
	}
	for i := 0; ; i++ { // the rest of the budget
		d, err := r.Allow(ctx, []byte("shared"), time.Now())
		if err != nil {
			t.Fatalf("decision after the errors: %v", err)
		}
		if !d.Allowed {
			break
		}
		allowed++
	}
	if allowed != burst {
		t.Errorf("allowed %d in all (%d decisions failed with the hash); want exactly %d", allowed, failed, burst)
	}
	if c.pipe.cur != conn {
		t.Error("the connection was replaced after script errors")
	}
	t.Logf("%d of %d good decisions shared the hash's script call", failed, n)
}

// TestPipeKilledWhileWaiting: decisions waiting on a server that dies all
// fail, soon (no hang); a restarted server on the same address is dialed
// again.
func TestPipeKilledWhileWaiting(t *testing.T) {
	s := startRedis(t)
	const timeout, margin = time.Second, 200 * time.Millisecond
	c := pipeClient(t, s, config.Redis{Timeout: config.Duration(timeout)})
	r := NewRedis(c, mustPolicy(t, "p", 1000, time.Second, 1000), RedisOptions{Timeout: timeout})
	ctx := context.Background()
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Signal(syscall.SIGSTOP) // the decisions wait for replies
	const n = 50
	done := make(chan []outcome)
	go func() { done <- decideAtOnce(r, n, func(i int) string { return strconv.Itoa(i) }, nil) }()
	waitUntil(t, "every decision waits", func() bool { return waitingCalls(c.pipe) == n })
	s.Signal(syscall.SIGKILL) // dies stopped: none of them is answered
	s.Kill()
	killed := time.Now()
	for i, o := range <-done {
		if o.err == nil {
			t.Errorf("decision %d on a killed server: %+v; want an error", i, o.d)
		}
		if o.took > timeout+margin {
			t.Errorf("decision %d took %v; want at most %v", i, o.took, timeout+margin)
		}
	}
	t.Logf("all failed %v after the kill", time.Since(killed))

	start := time.Now()
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err == nil {
		t.Error("a decision with the server down succeeded")
	} else if took := time.Since(start); took > timeout+margin {
		t.Errorf("a decision with the server down took %v", took)
	}
	s.Restart()
	if d, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil || !d.Allowed {
		t.Errorf("first decision after the restart: %+v, %v; want allowed", d, err)
	}
}

// TestPipeHungServer: on a server that stops answering, decisions fail
// after the timeout, not later; once it answers again, they succeed.
func TestPipeHungServer(t *testing.T) {
	s := startRedis(t)
	const timeout, margin = 100 * time.Millisecond, 200 * time.Millisecond
	c := pipeClient(t, s, config.Redis{Timeout: config.Duration(timeout)})
	r := NewRedis(c, mustPolicy(t, "p", 1000, time.Second, 1000), RedisOptions{Timeout: timeout})
	ctx := context.Background()
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Signal(syscall.SIGSTOP)
	defer s.Signal(syscall.SIGCONT)

	start := time.Now()
	_, err := r.Allow(ctx, []byte("k"), time.Now())
	if took := time.Since(start); err == nil || took < timeout || took > timeout+margin {
		t.Errorf("one decision: err %v after %v; want an error after %v to %v", err, took, timeout, timeout+margin)
	}
	for i, o := range decideAtOnce(r, 30, func(i int) string { return strconv.Itoa(i) }, nil) {
		if o.err == nil || o.took > timeout+margin {
			t.Errorf("decision %d at once: err %v after %v; want an error within %v", i, o.err, o.took, timeout+margin)
		}
	}
	start = time.Now() // on a connection dialed to the hung server
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err == nil || time.Since(start) > timeout+margin {
		t.Errorf("decision on a new connection: err %v after %v; want an error within %v", err, time.Since(start), timeout+margin)
	}

	s.Signal(syscall.SIGCONT)
	if d, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil || !d.Allowed {
		t.Errorf("first decision once the server answers: %+v, %v; want allowed", d, err)
	}
}

// TestPipeCloseReleases: Close refuses later decisions at once and releases
// the waiting ones, whether they wait for a reply or for a dial.
func TestPipeCloseReleases(t *testing.T) {
	const timeout, soon = 2 * time.Second, 500 * time.Millisecond
	ctx := context.Background()
	t.Run("after close", func(t *testing.T) {
		s := startRedis(t)
		c := pipeClient(t, s, config.Redis{Timeout: config.Duration(timeout)})
		r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{Timeout: timeout})
		if _, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil {
			t.Fatal(err)
		}
		c.Close()
		for i := range 2 {
			start := time.Now()
			_, err := r.Allow(ctx, []byte("k"), time.Now())
			if took := time.Since(start); !errors.Is(err, errPipeClosed) || took > soon {
				t.Errorf("decision %d after Close: err %v after %v; want errPipeClosed at once", i, err, took)
			}
		}
	})
	for _, tt := range []struct {
		name    string
		args    []string
		cfg     config.Redis
		waiting func(p *pipe) bool
	}{
		{"waiting for replies", nil, config.Redis{}, func(p *pipe) bool { return waitingCalls(p) == 20 }},
		// The server, hung, takes the connection but never answers AUTH.
		{"waiting for a dial", []string{"--requirepass", "pw"}, config.Redis{Password: "pw"}, func(p *pipe) bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.dialing != nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startRedis(t, tt.args...)
			tt.cfg.Timeout = config.Duration(timeout)
			c := pipeClient(t, s, tt.cfg)
			r := NewRedis(c, mustPolicy(t, "p", 1000, time.Second, 1000), RedisOptions{Timeout: timeout})
			s.Signal(syscall.SIGSTOP)
			defer s.Signal(syscall.SIGCONT)
			done := make(chan []outcome)
			go func() { done <- decideAtOnce(r, 20, func(i int) string { return strconv.Itoa(i) }, nil) }()
			waitUntil(t, "the decisions wait", func() bool { return tt.waiting(c.pipe) })
			c.Close()
			closed := time.Now()
			out := <-done
			if took := time.Since(closed); took > soon {
				t.Errorf("the waiting decisions returned %v after Close; want at once (the timeout is %v)", took, timeout)
			}
			for i, o := range out {
				if !errors.Is(o.err, errPipeClosed) {
					t.Errorf("decision %d: err = %v; want errPipeClosed", i, o.err)
				}
			}
		})
	}
}

// TestPipeSustainedLoad: decisions made back to back by many goroutines, so
// that replies are read while other calls are queued (the waiting list never
// empties and is compacted), stay exact.
func TestPipeSustainedLoad(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	const workers, each, burst = 64, 100, 60
	r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, burst), RedisOptions{})
	allowed := make([]int, workers)
	atOnce(workers, func(w int) {
		key := []byte("worker-" + strconv.Itoa(w))
		for range each {
			d, err := r.Allow(context.Background(), key, time.Now())
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed[w]++
			}
		}
	})
	for w, n := range allowed {
		if n != burst {
			t.Errorf("worker %d: allowed %d of %d; want %d", w, n, each, burst)
		}
	}
}

// TestPipeNoScriptConcurrent: after SCRIPT FLUSH, decisions under way at
// once get NOSCRIPT, send the script again and are decided once each.
func TestPipeNoScriptConcurrent(t *testing.T) {
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	const burst, n = 10, 100
	r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, burst), RedisOptions{})
	ctx := context.Background()
	if _, err := r.Allow(ctx, []byte("warm"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i, o := range decideAtOnce(r, n, sameKey("k"), nil) {
		if o.err != nil {
			t.Fatalf("decision %d: %v", i, o.err)
		}
		if o.d.Allowed {
			allowed++
		}
	}
	if allowed != burst {
		t.Errorf("allowed %d of %d; want %d", allowed, n, burst)
	}
	if ok, err := c.ScriptExists(ctx, gcraScript.Hash()).Result(); err != nil || !ok[0] {
		t.Errorf("SCRIPT EXISTS = %v, %v; want cached again", ok, err)
	}
}

// TestPipeAllocsSteadyState: a decision through the pipe allocates nothing,
// the pipe's own goroutines included.
func TestPipeAllocsSteadyState(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under -race")
	}
	s := startRedis(t)
	c := pipeClient(t, s, config.Redis{})
	for _, clientClock := range []bool{false, true} {
		t.Run(fmt.Sprintf("client clock %v", clientClock), func(t *testing.T) {
			r := NewRedis(c, mustPolicy(t, "p", 1000000, time.Second, 1000000), RedisOptions{ClientClock: clientClock})
			key := []byte("198.51.100.7")
			ctx := context.Background()
			allow := func() {
				if _, err := r.allowPiped(ctx, key, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			for range 100 {
				allow()
			}
			if n := testing.AllocsPerRun(200, allow); n != 0 {
				t.Errorf("allocations per decision = %v; want 0", n)
			}
		})
	}
}

// sizeOf is replySize with a panic turned into an error, so that one bad
// case fails its test instead of ending the test binary.
func sizeOf(b []byte) (n int, err error) {
	defer func() {
		if p := recover(); p != nil {
			n, err = -1, fmt.Errorf("panic: %v", p)
		}
	}()
	return replySize(b)
}

func TestRESPReplySize(t *testing.T) {
	nested := func(depth int) string { return strings.Repeat("*1\r\n", depth) + ":1\r\n" }
	tests := []struct {
		name string
		in   string
		want int // the first reply's size; -1: errProtocol
	}{
		{"simple string", "+OK\r\n", 5},
		{"error", "-WRONGTYPE Operation against a key\r\n", 36},
		{"integer", ":-9007199254740993\r\n", 20},
		{"bulk", "$3\r\nabc\r\n", 9},
		{"empty bulk", "$0\r\n\r\n", 6},
		{"bulk holding CRLF", "$4\r\na\r\nb\r\n", 10},
		{"null bulk", "$-1\r\n", 5},
		{"null array", "*-1\r\n", 5},
		{"empty array", "*0\r\n", 4},
		{"pairs", "*4\r\n:1\r\n:100\r\n:0\r\n:7\r\n", 22},
		{"nested", "*3\r\n*2\r\n:1\r\n$2\r\nab\r\n+x\r\n*0\r\n", 28},
		{"nested to the bound", nested(maxReplyDepth), 4*maxReplyDepth + 4},
		{"followed by another", ":1\r\n:2\r\n", 4},
		{"followed by garbage", "+OK\r\n\x00\xff", 5},

		{"unknown type", "?x\r\n", -1},
		{"empty line", "\r\n", -1},
		{"empty line in an array", "*1\r\n\r\n", -1},
		{"unknown type in an array", "*2\r\n:1\r\n!1\r\n", -1},
		{"bulk length not a number", "$x\r\nabc\r\n", -1},
		{"bulk length empty", "$\r\n", -1},
		{"bulk too long", "$99999999999\r\n", -1},
		{"bulk not ended by CRLF", "$1\r\naXY+OK\r\n", -1},
		{"array count not a number", "*2x\r\n:1\r\n:2\r\n", -1},
		{"array count too large", "*9999999999\r\n", -1},
		{"nested beyond the bound", nested(maxReplyDepth + 1), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sizeOf([]byte(tt.in))
			if tt.want < 0 {
				if !errors.Is(err, errProtocol) {
					t.Errorf("replySize(%q) = %d, %v; want errProtocol", tt.in, got, err)
				}
				return
			}
			if got != tt.want || err != nil {
				t.Errorf("replySize(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
			// Every part of a reply, as a read may leave it, is
			// incomplete: 0 and no error.
			for n := range tt.want {
				if got, err := sizeOf([]byte(tt.in[:n])); got != 0 || err != nil {
					t.Errorf("replySize(%q) = %d, %v; want 0, nil", tt.in[:n], got, err)
				}
			}
		})
	}
}

func TestRESPParsePairs(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		calls int
		want  [][2]int64 // nil: an error
		err   string     // in the error; errNoScript for NOSCRIPT
	}{
		{"one", "*2\r\n:1\r\n:100\r\n", 1, [][2]int64{{1, 100}}, ""},
		{"three", "*6\r\n:1\r\n:0\r\n:0\r\n:3600000000\r\n:1\r\n:-5\r\n", 3, [][2]int64{{1, 0}, {0, 3600000000}, {1, -5}}, ""},
		{"count short", "*2\r\n:1\r\n:2\r\n", 2, nil, "unexpected script reply"},
		{"count long", "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", 1, nil, "unexpected script reply"},
		{"empty array", "*0\r\n", 1, nil, "unexpected script reply"},
		{"null array", "*-1\r\n", 1, nil, "unexpected script reply"},
		{"noscript", "-NOSCRIPT No matching script. Please use EVAL.\r\n", 2, nil, errNoScript.Error()},
		{"script error", "-WRONGTYPE Operation against a key holding the wrong kind of value script: abc\r\n", 1, nil, "WRONGTYPE Operation"},
		{"bulk element", "*2\r\n$1\r\n1\r\n:5\r\n", 1, nil, "unexpected script reply"},
		{"simple string element", "*2\r\n+1\r\n:5\r\n", 1, nil, "unexpected script reply"},
		{"nested element", "*2\r\n*1\r\n:1\r\n:5\r\n", 1, nil, "unexpected script reply"},
		{"empty integer", "*2\r\n:\r\n:5\r\n", 1, nil, "unexpected script reply"},
		{"fraction", "*2\r\n:1.5\r\n:5\r\n", 1, nil, "unexpected script reply"},
		{"integer overflow", "*2\r\n:1\r\n:99999999999999999999\r\n", 1, nil, "unexpected script reply"},
		{"simple string", "+OK\r\n", 1, nil, "unexpected script reply"},
		{"integer", ":1\r\n", 1, nil, "unexpected script reply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n, err := replySize([]byte(tt.in)); n != len(tt.in) || err != nil {
				t.Fatalf("bad case: replySize = %d, %v; want %d", n, err, len(tt.in))
			}
			calls := make([]*pipeCall, tt.calls)
			for i := range calls {
				calls[i] = &pipeCall{}
			}
			err := parsePairs([]byte(tt.in), calls)
			if tt.want == nil {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parsePairs(%q) = %v; want an error with %q", tt.in, err, tt.err)
				}
				if noScript := tt.err == errNoScript.Error(); errors.Is(err, errNoScript) != noScript {
					t.Errorf("parsePairs(%q) = %v; errors.Is errNoScript = %v, want %v", tt.in, err, !noScript, noScript)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePairs(%q) = %v", tt.in, err)
			}
			for i, w := range tt.want {
				if calls[i].vals != w {
					t.Errorf("call %d: %v; want %v", i, calls[i].vals, w)
				}
			}
		})
	}
}

func TestRESPAppendCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"AUTH", "secret"}, "*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"},
		{[]string{"AUTH", "alice", "p\r\nw"}, "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$4\r\np\r\nw\r\n"},
		{[]string{"SELECT", "3"}, "*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"},
		{[]string{"PING", ""}, "*2\r\n$4\r\nPING\r\n$0\r\n\r\n"},
	}
	for _, tt := range tests {
		got := appendCommand([]byte("x"), tt.args...)
		if string(got) != "x"+tt.want {
			t.Errorf("appendCommand(%q) = %q; want %q", tt.args, got[1:], tt.want)
		}
		// A command is a RESP array too: it sizes as one reply.
		if n, err := replySize(got[1:]); n != len(tt.want) || err != nil {
			t.Errorf("replySize(appendCommand(%q)) = %d, %v; want %d", tt.args, n, err, len(tt.want))
		}
	}
}

// FuzzRESPReply: whatever a server sends, replySize does not panic; a size it
// finds is within the input, is the size of that reply alone, and every
// shorter part of it is incomplete (so a reply split across reads is
// waited for, never misread); parsePairs does not panic on it.
func FuzzRESPReply(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-NOSCRIPT No matching script\r\n", ":42\r\n", "$3\r\nabc\r\n", "$-1\r\n",
		"*2\r\n:1\r\n:99\r\n", "*2\r\n*1\r\n$1\r\nx\r\n:7\r\n", "*0\r\n", "*-1\r\n", ":1\r\n:2\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := sizeOf(b)
		if err != nil && !errors.Is(err, errProtocol) {
			t.Fatalf("replySize(%q): %v", b, err)
		}
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("replySize(%q) = %d beyond the input", b, n)
		}
		if m, err := sizeOf(b[:n]); m != n || err != nil {
			t.Fatalf("replySize(%q) = %d, %v; the whole input gave %d", b[:n], m, err, n)
		}
		for k := range n {
			if m, err := sizeOf(b[:k]); m != 0 || err != nil {
				t.Fatalf("replySize(%q) = %d, %v; want 0, nil (a part of %q)", b[:k], m, err, b[:n])
			}
		}
		for calls := 1; calls <= 2; calls++ {
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("parsePairs(%q, %d calls): panic %v", b[:n], calls, p)
					}
				}()
				_ = parsePairs(b[:n], []*pipeCall{{}, {}}[:calls])
			}()
		}
	})
}
