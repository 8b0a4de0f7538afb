package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// pipedStore returns a store on s through NewRedisClient's pipe, and the
// client (closed when t ends).
func pipedStore(t *testing.T, s *redisServer, p Policy, o RedisOptions) (*Redis, redis.UniversalClient) {
	t.Helper()
	c := s.client(t, time.Second)
	r := NewRedis(ScriptClient(c), p, o)
	if r.pipe == nil {
		t.Fatal("NewRedisClient's client for one server has no pipe")
	}
	return r, c
}

// scriptCalls is how many script calls (EVALSHA and EVAL) the server has run.
func scriptCalls(t *testing.T, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		v, _, _ := strings.Cut(rest, ",")
		k, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("commandstats line %q: %v", line, err)
		}
		n += k
	}
	return n
}

// decideAll runs one decision per key of keys at once, each on its own
// goroutine, and returns the decisions in the order of keys.
func decideAll(t *testing.T, lim Limiter, keys []string, now time.Time) []Decision {
	t.Helper()
	out := make([]Decision, len(keys))
	errs := make([]error, len(keys))
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			out[i], errs[i] = lim.Allow(context.Background(), []byte(k), now)
		}()
	}
	start.Done()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPipeConcurrentOneKeyExact: many decisions on one key under way at
// once, batched into few script calls, pass exactly the burst, each
// remaining count once.
func TestPipeConcurrentOneKeyExact(t *testing.T) {
	s := startRedis(t)
	const burst, n = 50, 300
	r, c := pipedStore(t, s, mustPolicy(t, "one", 1, time.Hour, burst), RedisOptions{})
	before := scriptCalls(t, c)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "k"
	}
	seen := map[int64]int{}
	allowed := 0
	for _, d := range decideAll(t, r, keys, time.Now()) {
		if d.Allowed {
			allowed++
			seen[d.Remaining]++
		}
	}
	if allowed != burst {
		t.Errorf("allowed %d of %d; want exactly %d", allowed, n, burst)
	}
	for rem := int64(0); rem < burst; rem++ {
		if seen[rem] != 1 {
			t.Errorf("remaining %d was given %d times; want once", rem, seen[rem])
		}
	}
	calls := scriptCalls(t, c) - before
	if calls >= n {
		t.Errorf("%d script calls for %d decisions under way at once; want them batched", calls, n)
	}
	t.Logf("%d decisions in %d script calls", n, calls)
}

// TestPipeBatchMixesPoliciesAndKeys: decisions of two policies on many keys,
// all under way at once, keep their own counts.
func TestPipeBatchMixesPoliciesAndKeys(t *testing.T) {
	s := startRedis(t)
	c := s.client(t, time.Second)
	a := NewRedis(ScriptClient(c), mustPolicy(t, "a", 1, time.Hour, 3), RedisOptions{})
	b := NewRedis(ScriptClient(c), mustPolicy(t, "b", 10, time.Minute, 5), RedisOptions{})
	const keys, tries = 20, 8
	type result struct {
		policy string
		key    int
		ok     bool
	}
	results := make(chan result, 2*keys*tries)
	var start, wg sync.WaitGroup
	start.Add(1)
	for _, st := range []struct {
		name string
		r    *Redis
	}{{"a", a}, {"b", b}} {
		for k := 0; k < keys; k++ {
			for i := 0; i < tries; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start.Wait()
					d, err := st.r.Allow(context.Background(), []byte("client-"+strconv.Itoa(k)), time.Now())
					if err != nil {
						t.Error(err)
						return
					}
					results <- result{st.name, k, d.Allowed}
				}()
			}
		}
	}
	start.Done()
	wg.Wait()
	close(results)
	got := map[string]map[int]int{"a": {}, "b": {}}
	for r := range results {
		if r.ok {
			got[r.policy][r.key]++
		}
	}
	want := map[string]int{"a": 3, "b": 5}
	for policy, perKey := range got {
		for k := 0; k < keys; k++ {
			if perKey[k] != want[policy] {
				t.Errorf("policy %s key %d: allowed %d of %d; want %d", policy, k, perKey[k], tries, want[policy])
			}
		}
	}
}

// TestPipeClientClockInBatch: with the callers' clocks, one key decided
// many times in one batch ends where the memory store ends after the same
// decisions one by one (the script reads and writes the key once but
// decides each call in turn).
func TestPipeClientClockInBatch(t *testing.T) {
	s := startRedis(t)
	p := mustPolicy(t, "clock", 10, time.Second, 4)
	r, _ := pipedStore(t, s, p, RedisOptions{ClientClock: true})
	m := NewMemory(p, 0)
	now := time.Now()
	keys := make([]string, 12)
	for i := range keys {
		keys[i] = "k"
	}
	allowed := 0
	for _, d := range decideAll(t, r, keys, now) {
		if d.Allowed {
			allowed++
		}
	}
	if allowed != 4 {
		t.Errorf("allowed %d of %d at one instant; want the burst, 4", allowed, len(keys))
	}
	for range keys {
		if _, err := m.Allow(context.Background(), []byte("k"), now); err != nil {
			t.Fatal(err)
		}
	}
	// 150 ms later one more token has come (10/s): both stores agree on
	// the next decisions exactly.
	for i, at := range []time.Duration{150 * time.Millisecond, 150 * time.Millisecond, 210 * time.Millisecond} {
		want, _ := m.Allow(context.Background(), []byte("k"), now.Add(at))
		got, err := r.Allow(context.Background(), []byte("k"), now.Add(at))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("decision %d at +%v: redis %+v; memory %+v", i, at, got, want)
		}
	}
}

// TestPipeAuthAndDB: a password, an ACL user and a database other than 0.
func TestPipeAuthAndDB(t *testing.T) {
	s := startRedis(t, "--requirepass", "s3cret", "--user", "rampart", "on", ">userpass", "~*", "+@all")
	p := mustPolicy(t, "auth", 1, time.Hour, 2)
	for _, tt := range []struct {
		name, user, pass string
	}{
		{"password", "", "s3cret"},
		{"acl user", "rampart", "userpass"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Redis{Address: s.addr, Username: tt.user, Password: tt.pass, DB: 3, Timeout: config.Duration(time.Second)}
			c, err := NewRedisClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := NewRedis(ScriptClient(c), p, RedisOptions{KeyPrefix: tt.name + ":"})
			d, err := r.Allow(context.Background(), []byte("k"), time.Now())
			if err != nil || !d.Allowed {
				t.Fatalf("Allow = %+v, %v; want allowed", d, err)
			}
			db3 := redis.NewClient(&redis.Options{Addr: s.addr, Username: tt.user, Password: tt.pass, DB: 3})
			defer db3.Close()
			if n, err := db3.Exists(context.Background(), tt.name+":auth:{k}").Result(); err != nil || n != 1 {
				t.Errorf("key in db 3: exists = %d, %v; want 1", n, err)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		c, err := NewRedisClient(&config.Redis{Address: s.addr, Password: "wrong", Timeout: config.Duration(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := NewRedis(ScriptClient(c), p, RedisOptions{})
		start := time.Now()
		_, err = r.Allow(context.Background(), []byte("k"), time.Now())
		if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("Allow with a wrong password: err = %v; want WRONGPASS", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("the refusal took %v", took)
		}
	})
}

// TestPipeScriptErrorKeepsConnection: a script error (a key of the wrong
// type) fails the decisions of that call only; the connection carries on.
func TestPipeScriptErrorKeepsConnection(t *testing.T) {
	s := startRedis(t)
	r, c := pipedStore(t, s, mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{})
	if err := c.HSet(context.Background(), config.DefaultRedisKeyPrefix+"p:{bad}", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Allow(context.Background(), []byte("bad"), time.Now()); err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("Allow on a hash key: err = %v; want WRONGTYPE", err)
	}
	pc := r.pipe.cur
	for i := 0; i < 3; i++ {
		d, err := r.Allow(context.Background(), []byte("good"), time.Now())
		if err != nil {
			t.Fatalf("decision %d after the error: %v", i, err)
		}
		if d.Allowed != (i < 2) {
			t.Errorf("decision %d: allowed = %v", i, d.Allowed)
		}
	}
	if r.pipe.cur != pc {
		t.Error("the connection was replaced after a script error")
	}
}

// TestPipeServerLost: a killed server fails the waiting decisions at once
// and a restarted one is used again; a hung one fails them after the
// timeout, not later.
func TestPipeServerLost(t *testing.T) {
	s := startRedis(t)
	const timeout = 100 * time.Millisecond
	c := s.client(t, timeout)
	r := NewRedis(ScriptClient(c), mustPolicy(t, "p", 1000, time.Second, 1000), RedisOptions{Timeout: timeout})
	ctx := context.Background()
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err != nil {
		t.Fatal(err)
	}

	s.signal(syscall.SIGSTOP)
	start := time.Now()
	_, err := r.Allow(ctx, []byte("k"), time.Now())
	took := time.Since(start)
	s.signal(syscall.SIGCONT)
	if err == nil {
		t.Fatal("a decision on a stopped server succeeded")
	}
	if took < timeout*9/10 || took > timeout+300*time.Millisecond {
		t.Errorf("a decision on a stopped server failed after %v; want about %v", took, timeout)
	}

	s.kill()
	if _, err := r.Allow(ctx, []byte("k"), time.Now()); err == nil {
		t.Fatal("a decision on a killed server succeeded")
	}
	s.start()
	var last error
	for i := 0; i < 3; i++ { // the first call may find the old connection broken
		if _, last = r.Allow(ctx, []byte("k"), time.Now()); last == nil {
			break
		}
	}
	if last != nil {
		t.Errorf("decisions after the restart: %v", last)
	}
}

// TestPipeClose: Close releases waiting decisions and refuses later ones.
func TestPipeClose(t *testing.T) {
	s := startRedis(t)
	c, err := NewRedisClient(&config.Redis{Address: s.addr, Timeout: config.Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRedis(ScriptClient(c), mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{Timeout: 5 * time.Second})
	if _, err := r.Allow(context.Background(), []byte("k"), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.signal(syscall.SIGSTOP) // the next call waits
	defer s.signal(syscall.SIGCONT)
	done := make(chan error, 1)
	go func() {
		_, err := r.Allow(context.Background(), []byte("k"), time.Now())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, errPipeClosed) {
			t.Errorf("waiting decision: err = %v; want errPipeClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not release a waiting decision")
	}
	if _, err := r.Allow(context.Background(), []byte("k"), time.Now()); !errors.Is(err, errPipeClosed) {
		t.Errorf("decision after Close: err = %v; want errPipeClosed", err)
	}
}

// TestPipeAllowAllocs: a decision through the pipe allocates nothing.
func TestPipeAllowAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under -race")
	}
	s := startRedis(t)
	r, _ := pipedStore(t, s, mustPolicy(t, "p", 1000000, time.Second, 1000000), RedisOptions{})
	key := []byte("198.51.100.7")
	ctx := context.Background()
	for i := 0; i < 10; i++ { // warm the pools and buffers
		if _, err := r.Allow(ctx, key, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := r.Allow(ctx, key, time.Now()); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a decision allocates %.1f times; want 0", allocs)
	}
}
