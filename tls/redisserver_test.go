package tls

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/internal/testredis"
)

// startRedis starts a redis-server for t, stopped when t ends, and
// returns its address (internal/testredis).
func startRedis(t testing.TB) string {
	t.Helper()
	return testredis.Start(t).Addr
}

// redisClient returns a client of the server at addr, closed when t ends.
func redisClient(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// redisDown returns a client of a port where nothing listens.
func redisDown(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}
