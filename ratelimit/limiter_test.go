package ratelimit

import (
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

func TestNew(t *testing.T) {
	s := startRedis(t)
	c := s.client(t, time.Second)
	rc := &config.Redis{Address: s.Addr, KeyPrefix: "x:", Timeout: config.Duration(20 * time.Millisecond)}
	tests := []struct {
		name     string
		rl       config.RateLimit
		o        Options
		wantType string
		deny     bool
		err      bool
	}{
		{"memory", config.RateLimit{Store: "memory"}, Options{}, "memory", false, false},
		{"redis allow", config.RateLimit{Store: "redis", OnStoreError: "allow"}, Options{Redis: c, RedisConfig: rc}, "failover", false, false},
		{"redis deny", config.RateLimit{Store: "redis", OnStoreError: "deny"}, Options{Redis: c, RedisConfig: rc}, "failover", true, false},
		{"redis without client", config.RateLimit{Store: "redis"}, Options{}, "", false, true},
		{"unknown store", config.RateLimit{Store: "disk"}, Options{}, "", false, true},
		{"unknown on_store_error", config.RateLimit{Store: "redis", OnStoreError: "maybe"}, Options{Redis: c}, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rl.Rate, tt.rl.Burst = config.Rate{N: 10, Per: time.Second}, 10
			p, err := NewPolicy("p", &tt.rl)
			if err != nil {
				t.Fatal(err)
			}
			lim, err := New(p, &tt.rl, tt.o)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v; want error %v", err, tt.err)
			}
			switch l := lim.(type) {
			case nil:
			case *Memory:
				if tt.wantType != "memory" {
					t.Errorf("got a Memory; want %s", tt.wantType)
				}
			case *Failover:
				if tt.wantType != "failover" || (l.local == nil) != tt.deny {
					t.Errorf("got a Failover, deny %v; want %s, deny %v", l.local == nil, tt.wantType, tt.deny)
				}
				r := l.store.(*Redis)
				if r.prefix != "x:p:{" || r.timeout != 20*time.Millisecond {
					t.Errorf("redis store prefix %q timeout %v; want x:p:{ 20ms", r.prefix, r.timeout)
				}
			}
		})
	}
}
