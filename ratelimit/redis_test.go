package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// TestRedisBurstThenRefill plays the memory store's exact scenario against
// Redis with the client's clock: both stores decide alike.
func TestRedisBurstThenRefill(t *testing.T) {
	s := startRedis(t)
	r := NewRedis(s.client(t, time.Second), mustPolicy(t, "p", 10, time.Second, 3), RedisOptions{ClientClock: true})
	runSteps(t, r, "k", burstThenRefill)
}

// TestRedisTwoInstancesOneLimit: two instances, each with its own client,
// sharing one Redis and the server's clock, pass exactly the burst between
// them however their requests interleave.
func TestRedisTwoInstancesOneLimit(t *testing.T) {
	s := startRedis(t)
	p := mustPolicy(t, "shared", 1, time.Hour, 20)
	a := NewRedis(s.client(t, time.Second), p, RedisOptions{})
	b := NewRedis(s.client(t, time.Second), p, RedisOptions{})
	var allowed, other atomic.Int64
	var wg sync.WaitGroup
	for _, lim := range []*Redis{a, b, a, b} {
		wg.Go(func() {
			for range 15 {
				d, err := lim.Allow(context.Background(), []byte("198.51.100.7"), time.Now())
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
				if d, _ := lim.Allow(context.Background(), []byte("198.51.100.8"), time.Now()); d.Allowed {
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 20 {
		t.Errorf("allowed %d of 60 requests; want exactly 20", n)
	}
	if n := other.Load(); n != 20 {
		t.Errorf("another key: allowed %d; want 20", n)
	}
}

// TestRedisKeyAndTTL checks the stored key: prefixed, hash-tagged, the TAT
// in µs, expiring when the TAT passes.
func TestRedisKeyAndTTL(t *testing.T) {
	s := startRedis(t)
	c := s.client(t, time.Second)
	r := NewRedis(c, mustPolicy(t, "per_ip", 1, time.Minute, 2), RedisOptions{KeyPrefix: "test:", ClientClock: true})
	if _, err := r.Allow(context.Background(), []byte("a}b"), t0); err != nil {
		t.Fatal(err)
	}
	const key = "test:per_ip:{a}b}"
	v, err := c.Get(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	if want := strconv.FormatInt(t0.Add(time.Minute).UnixMicro(), 10); v != want {
		t.Errorf("TAT = %s; want %s", v, want)
	}
	ttl, err := c.PTTL(context.Background(), key).Result()
	if err != nil || ttl <= 59*time.Second || ttl > time.Minute {
		t.Errorf("PTTL = %v, %v; want just under 1m", ttl, err)
	}
}

// TestRedisNoScript: after SCRIPT FLUSH, EVALSHA fails with NOSCRIPT and
// the store falls back to EVAL, keeping its state.
func TestRedisNoScript(t *testing.T) {
	s := startRedis(t)
	c := s.client(t, time.Second)
	r := NewRedis(c, mustPolicy(t, "p", 1, time.Hour, 2), RedisOptions{})
	ctx := context.Background()
	for i, want := range []bool{true, true, false} {
		if i == 1 {
			if err := c.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if ok, _ := c.ScriptExists(ctx, gcraScript.Hash()).Result(); ok[0] {
				t.Fatal("script still cached after SCRIPT FLUSH")
			}
		}
		d, err := r.Allow(ctx, []byte("k"), time.Now())
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if d.Allowed != want {
			t.Errorf("request %d: allowed = %v; want %v", i, d.Allowed, want)
		}
	}
	if ok, _ := c.ScriptExists(ctx, gcraScript.Hash()).Result(); !ok[0] {
		t.Error("script not cached again after EVAL")
	}
}

func TestNewRedisClient(t *testing.T) {
	tests := []struct {
		name string
		c    *config.Redis
		err  bool
	}{
		{"nil", nil, true},
		{"no address", &config.Redis{}, true},
		{"single", &config.Redis{Address: "127.0.0.1:1"}, false},
		{"cluster", &config.Redis{Addresses: []string{"127.0.0.1:1", "127.0.0.1:2"}}, false},
		{"sentinel", &config.Redis{Addresses: []string{"127.0.0.1:1"}, MasterName: "m"}, false},
		{"missing ca", &config.Redis{Address: "127.0.0.1:1", TLS: &config.RedisTLS{CAFile: "/nonexistent"}}, true},
		{"tls", &config.Redis{Address: "127.0.0.1:1", TLS: &config.RedisTLS{ServerName: "redis"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewRedisClient(tt.c)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v; want error %v", err, tt.err)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

// BenchmarkRedisAllow is one decision at a time over loopback: the round
// trip.
func BenchmarkRedisAllow(b *testing.B) {
	s := startRedis(b)
	r := NewRedis(s.client(b, time.Second), mustPolicy(b, "p", 1000000, time.Second, 1000000), RedisOptions{Timeout: time.Second})
	key := []byte("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Allow(context.Background(), key, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedisAllowParallel is 32 decisions per core under way at once,
// as a loaded proxy makes them: NewRedisClient's own pipe (what a single
// server gets) against go-redis's autopipeliner (what Sentinel and Cluster
// get). Both batch concurrent calls; the figure to watch is the CPU time per
// decision, so run it pinned: taskset -c 1 go test -bench AllowParallel
// -cpu 1 (redis-server is then on the same core).
func BenchmarkRedisAllowParallel(b *testing.B) {
	for _, name := range []string{"pipe", "autopipeline"} {
		b.Run(name, func(b *testing.B) {
			s := startRedis(b)
			c := s.client(b, time.Second)
			var sc redis.Scripter = c
			if name == "autopipeline" {
				ap, err := c.AutoPipeline()
				if err != nil {
					b.Fatal(err)
				}
				sc = ap
			}
			r := NewRedis(sc, mustPolicy(b, "p", 1000000, time.Second, 1000000), RedisOptions{Timeout: time.Second})
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				key := []byte("198.51.100.7")
				for pb.Next() {
					if _, err := r.Allow(context.Background(), key, time.Time{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
