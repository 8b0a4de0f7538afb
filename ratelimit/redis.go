package ratelimit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rampart-proxy/rampart/config"
)

// gcraScript is GCRA (Policy.decide) in Lua: the decisions of many keys in
// one call, so that one round trip and one script run carry every decision
// under way (a script run costs Redis about 2.5 µs whatever it does, and
// each key's GET and SET about as much again).
//
// KEYS are the keys to decide. ARGV[1] is the number P of policies;
// ARGV[2] is "1" when each key comes with the caller's clock, "0" for the
// server's TIME (read once per call); ARGV[2j+1] and ARGV[2j+2] are policy
// j's interval and tolerance, in µs. Then, for each key, its policy's
// number j, followed (when ARGV[2] is "1") by the caller's clock in µs since
// 1970 or an empty string for the server's. It returns {allowed (0 or 1),
// stored TAT - now} for each key in order; Go derives the rest of the
// Decision from these two (Policy.decision), so both stores compute it the
// same way. The same key twice is decided twice, in order, like two calls,
// but read and written once: a client, API key or route that sends many
// requests at once costs Redis little more than one.
//
// Numbers stay integers below 2^53, exact in Lua's doubles; the TAT is
// written with %d because Lua's tostring would use %.14g and lose digits.
// The key expires when its TAT passes: it is then equivalent to absent
// anyway. Writing after TIME needs effects replication, the default since
// Redis 5.
var gcraScript = redis.NewScript(gcraLua)

const gcraLua = `
local np = tonumber(ARGV[1])
local step = 1
if ARGV[2] == '1' then step = 2 end
local intervals, tolerances = {}, {}
for j = 1, np do
  intervals[j] = tonumber(ARGV[2 * j + 1])
  tolerances[j] = tonumber(ARGV[2 * j + 2])
end
local out, tats, ttls, order = {}, {}, {}, {}
local server
local a = 2 * np + 3
for i = 1, #KEYS do
  local key = KEYS[i]
  local j = tonumber(ARGV[a])
  local now
  if step == 2 then now = tonumber(ARGV[a + 1]) end
  a = a + step
  if not now then
    if not server then
      local t = redis.call('TIME')
      server = tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    now = server
  end
  local tat = tats[key]
  if not tat then
    tat = tonumber(redis.call('GET', key) or 0)
    tats[key] = tat
  end
  if tat < now then tat = now end
  local nxt = tat + intervals[j]
  if nxt - now > tolerances[j] then
    out[2 * i - 1] = 0
    out[2 * i] = tat - now
  else
    if not ttls[key] then order[#order + 1] = key end
    tats[key] = nxt
    ttls[key] = math.ceil((nxt - now) / 1000)
    out[2 * i - 1] = 1
    out[2 * i] = nxt - now
  end
end
for _, key in ipairs(order) do
  redis.call('SET', key, string.format('%d', tats[key]), 'PX', ttls[key])
end
return out
`

// Redis is the shared store: every instance using the same Redis, key prefix
// and policy name enforces one limit.
//
// A key is stored as KeyPrefix + policy name + ":{" + key + "}": the braces
// make the client's key the Redis Cluster hash tag, so its slot depends on
// that key alone (through go-redis a script call touches one key, so every
// slot works, and one client's keys of every policy land on one node). It
// holds the TAT as decimal µs and expires when the TAT passes.
//
// With a single server (NewRedisClient's client), decisions go through a
// pipe: the decisions under way at one moment share one script call. With
// Sentinel or Cluster, each decision is one script call through go-redis's
// auto-pipelining (see ScriptClient). Either way each call is bounded by the
// timeout (config.Redis.Timeout); Redis errors are returned, and Failover
// decides what they mean. Redis 5 or later is needed (the script writes
// after reading TIME).
type Redis struct {
	client      redis.Scripter
	pipe        *pipe // NewRedisClient's for a single server; nil: client does the calls
	policy      Policy
	prefix      string // KeyPrefix + name + ":{"
	timeout     time.Duration
	clientClock bool
	args        []any  // ARGV for one decision with the server's clock, boxed once
	policyRESP  []byte // the interval and tolerance, encoded for the pipe
}

// RedisOptions configures a Redis store.
type RedisOptions struct {
	// KeyPrefix prefixes every key. Default config.DefaultRedisKeyPrefix.
	KeyPrefix string
	// Timeout bounds each call made through go-redis. Default
	// config.DefaultRedisTimeout. Through the pipe of NewRedisClient's
	// client for one server, the client's own timeout (its redis.timeout)
	// bounds each call instead: the proxy passes the same value to both.
	Timeout time.Duration
	// ClientClock makes the script use the now passed to Allow instead of
	// the Redis server's clock. The default (false), the server's clock,
	// keeps instances whose clocks disagree on one limit; ClientClock is for
	// tests with an injected clock.
	ClientClock bool
}

// NewRedis returns a Redis store for p using client: what ScriptClient
// returns for the client from NewRedisClient (shared by every policy), or
// any go-redis client.
func NewRedis(client redis.Scripter, p Policy, o RedisOptions) *Redis {
	if o.KeyPrefix == "" {
		o.KeyPrefix = config.DefaultRedisKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = config.DefaultRedisTimeout
	}
	r := &Redis{
		client:      client,
		policy:      p,
		prefix:      o.KeyPrefix + p.name + ":{",
		timeout:     o.Timeout,
		clientClock: o.ClientClock,
		args:        []any{"1", "0", strconv.FormatInt(p.interval, 10), strconv.FormatInt(p.tolerance, 10), "1"},
	}
	if pc, ok := client.(*pipedClient); ok {
		r.pipe = pc.pipe
		r.policyRESP = appendBulk(appendBulk(nil, r.args[2].(string)), r.args[3].(string))
	}
	return r
}

// ScriptClient returns what NewRedis should be given for client (from
// NewRedisClient): client itself when it pipelines decisions on its own (a
// single server), else go-redis's auto-pipelining client, which batches
// concurrent decisions onto shared connections (Sentinel, Cluster).
func ScriptClient(client redis.UniversalClient) redis.Scripter {
	if _, ok := client.(*pipedClient); ok {
		return client
	}
	if ap, err := client.AutoPipeline(); err == nil {
		return ap
	}
	return client
}

// Allow implements Limiter with one EVALSHA (EVAL once after the script
// cache was flushed, as redis.Script.Run does).
func (r *Redis) Allow(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	if r.pipe != nil {
		return r.allowPiped(ctx, key, now)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	keys := []string{r.key(key)}
	args := r.args
	if r.clientClock {
		args = []any{"1", "1", args[2], args[3], "1", now.UnixMicro()}
	}
	v, err := gcraScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(v) != 2 || v[1] < 0 {
		return Decision{}, fmt.Errorf("ratelimit: redis: unexpected script reply %v", v)
	}
	return r.policy.decision(v[0] == 1, v[1]), nil
}

// allowPiped is Allow through the pipe, which sends the decisions under
// way together (see pipe).
func (r *Redis) allowPiped(ctx context.Context, key []byte, now time.Time) (Decision, error) {
	c := r.pipe.getCall()
	c.key = append(append(append(c.key[:0], r.prefix...), key...), '}')
	c.policy = r.policyRESP
	c.now = c.now[:0]
	if r.clientClock {
		c.now = strconv.AppendInt(c.now, now.UnixMicro(), 10)
	}
	err := r.pipe.do(ctx, c)
	if errors.Is(err, errNoScript) {
		err = r.pipe.do(ctx, c) // the pipe sends the script itself this time
	}
	if err != nil {
		if ctx.Err() == nil {
			r.pipe.putCall(c) // else the reader may still answer it
		}
		return Decision{}, err
	}
	v := c.vals
	r.pipe.putCall(c)
	if v[1] < 0 {
		return Decision{}, fmt.Errorf("ratelimit: redis: unexpected script reply %v", v)
	}
	return r.policy.decision(v[0] == 1, v[1]), nil
}

// key returns the Redis key for key.
func (r *Redis) key(key []byte) string {
	return r.prefix + string(key) + "}"
}

// redisPoolSize bounds the connections to Redis (per node).
const redisPoolSize = 256

// NewRedisClient connects to the Redis described by c (defaults applied):
// a single server for Address, Sentinel for Addresses with MasterName, a
// Cluster for Addresses without. The client never retries a command and
// bounds dialing, reads and writes by c.Timeout, so a dead Redis costs a
// request at most that long.
func NewRedisClient(c *config.Redis) (redis.UniversalClient, error) {
	if c == nil {
		return nil, errors.New("ratelimit: no redis section")
	}
	timeout := c.Timeout.Std()
	if timeout <= 0 {
		timeout = config.DefaultRedisTimeout
	}
	o := &redis.UniversalOptions{
		Addrs:         c.Addresses,
		MasterName:    c.MasterName,
		Username:      c.Username,
		Password:      c.Password,
		DB:            c.DB,
		MaxRetries:    -1,
		DialTimeout:   timeout,
		DialerRetries: 1,
		ReadTimeout:   timeout,
		WriteTimeout:  timeout,
		PoolTimeout:   timeout,
		// One connection per decision in flight: go-redis's default (10
		// per CPU, so 10 for a proxy on one core) makes decisions queue
		// for a connection under load, and a queue wait beyond the
		// timeout would count as Redis being down.
		PoolSize:              redisPoolSize,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
	}
	if c.Address != "" {
		o.Addrs = []string{c.Address}
	}
	if len(o.Addrs) == 0 {
		return nil, errors.New("ratelimit: redis: no address")
	}
	if c.TLS != nil {
		t, err := redisTLS(c.TLS)
		if err != nil {
			return nil, err
		}
		o.TLSConfig = t
	}
	client := redis.NewUniversalClient(o)
	if len(o.Addrs) > 1 || o.MasterName != "" {
		return client, nil // Cluster or Sentinel: go-redis alone
	}
	return &pipedClient{UniversalClient: client, pipe: newPipe(pipeOptions{
		addr:     o.Addrs[0],
		timeout:  timeout,
		tls:      o.TLSConfig,
		username: o.Username,
		password: o.Password,
		db:       o.DB,
	})}, nil
}

// pipedClient is NewRedisClient's client for a single server: go-redis for
// every command, and a pipe of its own for the rate limit decisions.
type pipedClient struct {
	redis.UniversalClient
	pipe *pipe
}

// Close closes both.
func (c *pipedClient) Close() error {
	_ = c.pipe.Close()
	return c.UniversalClient.Close()
}

// redisTLS builds the TLS configuration for Redis.
func redisTLS(c *config.RedisTLS) (*tls.Config, error) {
	t := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // the operator's explicit choice
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: redis tls ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ratelimit: redis tls ca_file %s: no PEM certificate", c.CAFile)
		}
	}
	if c.CertFile != "" || c.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ratelimit: redis tls client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// SetRedisLogger sends go-redis's own messages (a failed dial, once per
// probe) to log at debug level instead of stderr.
func SetRedisLogger(log *slog.Logger) {
	redis.SetLogger(redisLogger{log})
}

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...interface{}) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...), "component", "redis")
	}
}
