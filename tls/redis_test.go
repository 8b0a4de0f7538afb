package tls

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"
)

func TestRedisCache(t *testing.T) {
	addr := startRedis(t)
	c := redisClient(t, addr)
	cache := &redisCache{client: c, prefix: "test:acme:"}
	ctx := context.Background()
	if _, err := cache.Get(ctx, "a.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get of a missing key: got %v; want autocert.ErrCacheMiss", err)
	}
	for key, wantTTL := range map[string]bool{"a.test": false, "acme_account+key": false, "tok+http-01": true, "a.test+token": true} {
		if err := cache.Put(ctx, key, []byte("v "+key)); err != nil {
			t.Fatal(err)
		}
		got, err := cache.Get(ctx, key)
		if err != nil || string(got) != "v "+key {
			t.Fatalf("Get(%q): got %q, %v", key, got, err)
		}
		ttl := c.TTL(ctx, "test:acme:"+key).Val()
		if (ttl > 0) != wantTTL || ttl > tokenTTL {
			t.Errorf("%s: got TTL %v; want one: %v", key, ttl, wantTTL)
		}
	}
	if err := cache.Delete(ctx, "a.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, "a.test"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Get after Delete: got %v; want a miss", err)
	}
	if err := cache.Delete(ctx, "never.test"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func TestRedisLock(t *testing.T) {
	addr := startRedis(t)
	c := redisClient(t, addr)
	l := &redisLock{client: c, prefix: "test:acme:lock:", ttl: 300 * time.Millisecond, poll: 10 * time.Millisecond}
	ctx := context.Background()

	releaseA, err := l.acquire(ctx, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("held: another waits until its context ends", func(t *testing.T) {
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if _, err := l.acquire(wctx, "a.test"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v; want the wait to time out", err)
		}
	})
	t.Run("another host is free", func(t *testing.T) {
		release, err := l.acquire(ctx, "b.test")
		if err != nil {
			t.Fatal(err)
		}
		release()
	})
	t.Run("the holder renews its lease", func(t *testing.T) {
		time.Sleep(3 * l.ttl)
		if n := c.Exists(ctx, "test:acme:lock:a.test").Val(); n != 1 {
			t.Fatal("lease lapsed while held")
		}
	})
	t.Run("a waiter gets it on release", func(t *testing.T) {
		got := make(chan error, 1)
		go func() {
			release, err := l.acquire(ctx, "a.test")
			if err == nil {
				release()
			}
			got <- err
		}()
		time.Sleep(50 * time.Millisecond)
		releaseA()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("waiter still waiting after release")
		}
	})
	t.Run("release deletes only its own lock", func(t *testing.T) {
		release, err := l.acquire(ctx, "c.test")
		if err != nil {
			t.Fatal(err)
		}
		// As if its lease lapsed and another instance took the lock.
		c.Set(ctx, "test:acme:lock:c.test", "someone else", time.Minute)
		release()
		if v := c.Get(ctx, "test:acme:lock:c.test").Val(); v != "someone else" {
			t.Fatalf("got lock value %q; want the other instance's lock intact", v)
		}
	})
	t.Run("Redis down", func(t *testing.T) {
		down := &redisLock{client: redisDown(t), prefix: "x:", ttl: time.Second, poll: 10 * time.Millisecond}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := down.acquire(wctx, "a.test"); err == nil || !strings.Contains(err.Error(), "ACME lock") {
			t.Fatalf("got %v; want the Redis error", err)
		}
	})
}

// TestRedisLockOneAtATime runs many contenders: at most one holds the lock
// at any moment.
func TestRedisLockOneAtATime(t *testing.T) {
	addr := startRedis(t)
	var mu sync.Mutex
	holders, maxHolders := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		l := &redisLock{client: redisClient(t, addr), prefix: "test:lock:", ttl: time.Second, poll: 5 * time.Millisecond}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.acquire(context.Background(), "h.test")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			holders++
			maxHolders = max(maxHolders, holders)
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			holders--
			mu.Unlock()
			release()
		}()
	}
	wg.Wait()
	if maxHolders != 1 {
		t.Fatalf("got %d holders at once; want 1", maxHolders)
	}
}
