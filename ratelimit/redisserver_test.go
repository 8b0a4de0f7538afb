package ratelimit

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testredis"
)

// redisServer is a redis-server process of one test (internal/testredis).
type redisServer struct{ *testredis.Server }

// startRedis starts a redis-server with the extra arguments args for t and
// stops it when t ends. It skips t only when the redis-server binary is
// missing (make test installs it).
func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	return &redisServer{testredis.Start(t, args...)}
}

// client returns a client built by NewRedisClient, closed when t ends.
func (s *redisServer) client(t testing.TB, timeout time.Duration) redis.UniversalClient {
	t.Helper()
	c, err := NewRedisClient(&config.Redis{Address: s.Addr, Timeout: config.Duration(timeout)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
