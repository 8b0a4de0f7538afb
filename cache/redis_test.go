package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testredis"
	"github.com/rampart-proxy/rampart/ratelimit"
)

// TestRedisStore runs the Redis store against a real redis-server: set
// with a TTL, get, purge by key and prefix, and a killed server turning
// calls into fast ErrUnavailable until it is back.
func TestRedisStore(t *testing.T) {
	rs := testredis.Start(t)
	c, err := ratelimit.NewRedisClient(&config.Redis{Address: rs.Addr, Timeout: config.Duration(100 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errs := 0
	r := NewRedis(c, RedisOptions{Prefix: "t:", Timeout: 100 * time.Millisecond, Pause: 200 * time.Millisecond, OnError: func() { errs++ }})
	ctx := context.Background()
	e := &Entry{Status: 200, Header: []Field{{"Content-Type", "text/plain"}}, Body: []byte("hello")}
	for _, k := range []string{"GET http://a/1", "GET http://a/2", "GET http://b/*?"} {
		if err := r.Set(ctx, k, e, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if !r.Flush(5 * time.Second) {
		t.Fatal("writes did not finish")
	}
	got, err := r.Get(ctx, "GET http://a/1")
	if err != nil || got == nil || string(got.Body) != "hello" || got.Get("content-type") != "text/plain" {
		t.Fatalf("Get: got %+v, %v; want the entry", got, err)
	}
	if ttl, _ := rs.Do("PTTL", "t:GET http://a/1"); ttl == ":-1" || ttl == ":-2" {
		t.Errorf("PTTL: got %s; want a TTL", ttl)
	}
	if got, err := r.Get(ctx, "GET http://none"); got != nil || err != nil {
		t.Errorf("Get of a missing key: got %v, %v; want nil, nil", got, err)
	}
	if n, err := r.Purge(ctx, "GET http://a/", true); n != 2 || err != nil {
		t.Errorf("prefix purge: got %d, %v; want 2", n, err)
	}
	// A key with glob characters is purged literally.
	if n, err := r.Purge(ctx, "GET http://b/*", true); n != 1 || err != nil {
		t.Errorf("prefix purge with a '*': got %d, %v; want 1", n, err)
	}
	if _, err := rs.Do("SET", "t:junk", "not an entry"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Get(ctx, "junk"); got != nil || err != nil {
		t.Errorf("Get of a damaged entry: got %v, %v; want a miss", got, err)
	}

	rs.Kill()
	start := time.Now()
	if _, err := r.Get(ctx, "GET http://a/1"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with Redis down: got %v; want ErrUnavailable", err)
	}
	// Paused: the next calls do not touch the network.
	for range 100 {
		if _, err := r.Get(ctx, "k"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get while paused: got %v; want ErrUnavailable", err)
		}
		if err := r.Set(ctx, "k", e, time.Minute); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Set while paused: got %v; want ErrUnavailable", err)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("101 calls with Redis down took %v; want them cut short", d)
	}
	if errs == 0 {
		t.Error("OnError was never called")
	}
	rs.Restart()
	if !waitUntil(func() bool {
		_, err := r.Get(ctx, "k")
		return err == nil
	}) {
		t.Error("the store never used Redis again")
	}
}
