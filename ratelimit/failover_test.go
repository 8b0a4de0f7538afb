package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/internal/testlog"
)

// fakeStore answers from a memory store, or fails with err when set.
type fakeStore struct {
	mu    sync.Mutex // guards the fields below
	err   error
	calls int
	block chan struct{} // when set, a call waits for it to close
	mem   *Memory
}

func (f *fakeStore) Allow(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	f.mu.Lock()
	f.calls++
	err, block := f.err, f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
	if err != nil {
		return Decision{}, err
	}
	return f.mem.Allow(ctx, key, now)
}

func (f *fakeStore) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeStore) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newLog() (*testlog.Buffer, *slog.Logger) {
	return testlog.New(slog.LevelDebug)
}

var errDown = errors.New("connection refused")

// TestFailoverBackoff checks the exact probe schedule with an injected
// clock: 1 s, doubling, capped at 30 s; one log line each way.
func TestFailoverBackoff(t *testing.T) {
	for _, mode := range []string{"allow", "deny"} {
		t.Run(mode, func(t *testing.T) {
			p := mustPolicy(t, "p", 1, time.Hour, 2)
			store := &fakeStore{mem: NewMemory(p, 0)}
			var local Limiter
			if mode == "allow" {
				local = NewMemory(p, 0)
			}
			logs, log := newLog()
			var changes []bool
			f := NewFailover(store, local, p, FailoverOptions{Logger: log, OnChange: func(d bool) { changes = append(changes, d) }})
			ctx := context.Background()
			allow := func(at time.Duration) Decision {
				t.Helper()
				d, err := f.Allow(ctx, []byte("k"), t0.Add(at))
				if err != nil {
					t.Fatalf("at %v: %v", at, err)
				}
				return d
			}
			if d := allow(0); !d.Allowed || d.Fallback || d.Unavailable {
				t.Fatalf("healthy: %+v", d)
			}
			store.set(errDown)
			// Each probe is when the previous back-off ends.
			probes := []time.Duration{0, 1, 3, 7, 15, 31, 61, 91}
			for i, at := range probes {
				at *= time.Second
				d := allow(at)
				if got, want := store.count(), i+2; got != want {
					t.Fatalf("probe %d at %v: store calls = %d; want %d", i, at, got, want)
				}
				switch mode {
				case "allow":
					if !d.Fallback || d.Unavailable {
						t.Errorf("at %v: %+v; want a fallback decision", at, d)
					}
				case "deny":
					next := probes[min(i+1, len(probes)-1)]*time.Second - at
					if i == len(probes)-1 {
						next = 30 * time.Second
					}
					if d.Allowed || !d.Unavailable || d.RetryAfter != next {
						t.Errorf("at %v: %+v; want Unavailable, RetryAfter %v", at, d, next)
					}
				}
				if i < len(probes)-1 {
					allow(probes[i+1]*time.Second - time.Microsecond) // just before the next probe
					if got := store.count(); got != i+2 {
						t.Fatalf("store called during the back-off after probe %d", i)
					}
				}
			}
			s := f.Stats()
			if !s.Degraded || s.StoreErrors != uint64(len(probes)) {
				t.Errorf("stats %+v; want degraded, %d store errors", s, len(probes))
			}
			if mode == "allow" && (s.Fallbacks != uint64(2*len(probes)-1) || s.Refusals != 0) {
				t.Errorf("stats %+v; want %d fallbacks", s, 2*len(probes)-1)
			}
			if mode == "deny" && (s.Refusals != uint64(2*len(probes)-1) || s.Fallbacks != 0) {
				t.Errorf("stats %+v; want %d refusals", s, 2*len(probes)-1)
			}
			store.set(nil)
			if d := allow(121 * time.Second); d.Fallback || d.Unavailable {
				t.Errorf("after recovery: %+v", d)
			}
			if f.Stats().Degraded {
				t.Error("still degraded after a successful probe")
			}
			if n := logs.Count("level=WARN"); n != 1 {
				t.Errorf("%d WARN lines; want 1:\n%s", n, logs.String())
			}
			if n := logs.Count("store available again"); n != 1 {
				t.Errorf("%d recovery lines; want 1", n)
			}
			if len(changes) != 2 || !changes[0] || changes[1] {
				t.Errorf("OnChange calls %v; want [true false]", changes)
			}
		})
	}
}

// TestFailoverOneProbe: while a probe is under way, other calls fall back
// instead of piling onto the store.
func TestFailoverOneProbe(t *testing.T) {
	p := mustPolicy(t, "p", 1000, time.Second, 1000)
	store := &fakeStore{mem: NewMemory(p, 0), err: errDown}
	f := NewFailover(store, NewMemory(p, 0), p, FailoverOptions{})
	f.Allow(context.Background(), []byte("k"), t0) // fails: degraded until t0+1s
	store.mu.Lock()
	store.err, store.block = nil, make(chan struct{})
	store.mu.Unlock()
	at := t0.Add(time.Second)
	probed := make(chan Decision)
	go func() {
		d, _ := f.Allow(context.Background(), []byte("k"), at)
		probed <- d
	}()
	for store.count() != 2 { // the probe reached the store
		time.Sleep(time.Millisecond)
	}
	for range 10 {
		if d, _ := f.Allow(context.Background(), []byte("k"), at); !d.Fallback {
			t.Errorf("a call during the probe did not fall back: %+v", d)
		}
	}
	close(store.block)
	if d := <-probed; d.Fallback {
		t.Errorf("probe decision %+v; want from the store", d)
	}
	if n := store.count(); n != 2 {
		t.Errorf("store calls = %d; want 2", n)
	}
}

// TestFailoverCallerGone: an error because the caller's context ended does
// not make the store unavailable.
func TestFailoverCallerGone(t *testing.T) {
	p := mustPolicy(t, "p", 1, time.Second, 1)
	store := &fakeStore{mem: NewMemory(p, 0), err: context.Canceled}
	f := NewFailover(store, nil, p, FailoverOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if d, err := f.Allow(ctx, []byte("k"), t0); err != nil || !d.Unavailable {
		t.Errorf("Allow = %+v, %v; want an Unavailable decision", d, err)
	}
	if s := f.Stats(); s.Degraded || s.StoreErrors != 0 {
		t.Errorf("stats %+v; want healthy", s)
	}
}

// TestFailoverRedisDown kills, hangs and restarts a real redis-server under
// both on_store_error settings, with a plain client and an autopipeliner: no
// call takes longer than the timeout plus
// a margin, and decisions come from Redis again once it is back.
func TestFailoverRedisDown(t *testing.T) {
	const timeout = 50 * time.Millisecond
	const margin = 150 * time.Millisecond
	for _, tc := range []struct {
		mode      string
		pipelined bool
	}{{"allow", false}, {"deny", false}, {"allow", true}, {"deny", true}} {
		mode := tc.mode
		name := mode
		if tc.pipelined {
			name += "/autopipeline"
		}
		t.Run(name, func(t *testing.T) {
			s := startRedis(t)
			p := mustPolicy(t, "p", 1000, time.Second, 1000)
			var client redis.Scripter = s.client(t, timeout)
			if tc.pipelined {
				ap, err := s.client(t, timeout).AutoPipeline()
				if err != nil {
					t.Fatal(err)
				}
				client = ap
			}
			var local Limiter
			if mode == "allow" {
				local = NewMemory(p, 0)
			}
			logs, log := newLog()
			f := NewFailover(NewRedis(client, p, RedisOptions{Timeout: timeout}), local, p, FailoverOptions{Logger: log})
			now := t0
			var slowest time.Duration
			allow := func() Decision {
				t.Helper()
				start := time.Now()
				d, err := f.Allow(context.Background(), []byte("k"), now)
				if err != nil {
					t.Fatal(err)
				}
				slowest = max(slowest, time.Since(start))
				return d
			}
			wantDegraded := func(phase string) {
				t.Helper()
				for range 5 {
					d := allow()
					if mode == "allow" && (!d.Allowed || !d.Fallback) {
						t.Errorf("%s: %+v; want allowed by the fallback", phase, d)
					}
					if mode == "deny" && (d.Allowed || !d.Unavailable) {
						t.Errorf("%s: %+v; want refused as Unavailable", phase, d)
					}
				}
			}
			wantHealthy := func(phase string) {
				t.Helper()
				if d := allow(); !d.Allowed || d.Fallback || d.Unavailable {
					t.Errorf("%s: %+v; want allowed by Redis", phase, d)
				}
				if f.Stats().Degraded {
					t.Errorf("%s: degraded", phase)
				}
			}

			wantHealthy("before")
			s.Kill()
			wantDegraded("killed")
			now = now.Add(time.Second) // probe: still down
			wantDegraded("killed, probed")
			if n := f.Stats().StoreErrors; n != 2 {
				t.Errorf("store errors = %d; want 2 (one call, one probe)", n)
			}
			s.Restart()
			now = now.Add(2 * time.Second)
			wantHealthy("restarted")

			s.Signal(syscall.SIGSTOP) // hung: accepts, never answers
			wantDegraded("hung")
			s.Signal(syscall.SIGCONT)
			now = now.Add(time.Second)
			wantHealthy("resumed")

			if slowest > timeout+margin {
				t.Errorf("slowest call %v; want at most %v", slowest, timeout+margin)
			}
			if n := logs.Count("level=WARN"); n != 2 {
				t.Errorf("%d WARN lines; want 2 (killed, hung):\n%s", n, logs.String())
			}
			t.Logf("slowest call %v", slowest)
		})
	}
}
