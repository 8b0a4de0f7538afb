// Package ratelimit decides whether a request may pass a rate limit policy.
// It knows nothing of HTTP: the proxy derives a key from a request, asks a
// Limiter, and turns the Decision into a status and headers with the
// Append* helpers of headers.go.
//
// One algorithm, GCRA (the generic cell rate algorithm), which is exactly a
// token bucket holding Burst tokens refilled at Rate, but stores a single
// number per key: the theoretical arrival time (TAT) of the next request.
// A key whose TAT is in the past is the same as a key never seen, so idle
// state can be dropped at any time without changing a decision.
//
// Stores:
//   - Memory (store: memory, the default): sharded, bounded, per instance.
//   - Redis (store: redis): a Lua script in Redis decides, shared by every
//     instance that uses the same Redis, key prefix and policy name; on a
//     single server the decisions under way at one moment share one round
//     trip and one script run (pipe.go).
//   - Failover wraps a shared store and decides what happens while it is
//     unreachable (on_store_error: allow or deny).
//
// Times are kept in whole microseconds (Redis's Lua numbers are doubles, exact
// to 2^53: about 285 years of microseconds since 1970), so the emission
// interval Per/N is rounded down to a microsecond, rates up to 1,000,000 per
// second per key are supported, and a client gains at most 1 µs per request
// from the rounding.
package ratelimit
