package ratelimit

import "strconv"

// The header helpers follow draft-ietf-httpapi-ratelimit-headers-11 (May
// 2026): both fields are Structured Field Lists whose items are the policy
// name as an sf-string with parameters.
//
//	RateLimit-Policy: "per_ip";q=200;w=2
//	RateLimit: "per_ip";r=57;t=1
//
// The policy item says: a quota q of Burst requests, and a window w, the
// seconds (rounded up) the bucket takes to refill from empty, so q/w is the
// sustained rate and q the burst.
//
// The service limit item says: r requests remain right now (Remaining), and
// t is, while r > 0, the seconds until the quota is whole again (Reset,
// rounded up); when r = 0, the seconds until one more request passes
// (RetryAfter, rounded up), so on a refused request t equals Retry-After as
// the draft asks ("Retry-After SHOULD NOT reference a point in time earlier
// than the end of the effective window"). No partition key (pk) is sent:
// it would echo the client's address or header back.
//
// Each helper appends to dst and returns it; none allocates when dst has
// room.

// AppendPolicyHeader appends the value of the RateLimit-Policy field.
func (p Policy) AppendPolicyHeader(dst []byte) []byte {
	dst = append(dst, p.quoted...)
	dst = append(dst, ";q="...)
	dst = strconv.AppendInt(dst, p.burst, 10)
	dst = append(dst, ";w="...)
	return strconv.AppendInt(dst, p.windowSeconds(), 10)
}

// AppendHeader appends the value of the RateLimit field for d, a decision
// of this policy.
func (p Policy) AppendHeader(dst []byte, d Decision) []byte {
	t := d.Reset
	if d.Remaining <= 0 {
		t = d.RetryAfter
	}
	dst = append(dst, p.quoted...)
	dst = append(dst, ";r="...)
	dst = strconv.AppendInt(dst, max(0, d.Remaining), 10)
	dst = append(dst, ";t="...)
	return strconv.AppendInt(dst, ceilSeconds(t), 10)
}

// AppendRetryAfter appends the value of the Retry-After field (delay-seconds)
// for a refused decision: RetryAfter rounded up, at least 1.
func AppendRetryAfter(dst []byte, d Decision) []byte {
	return strconv.AppendInt(dst, max(1, ceilSeconds(d.RetryAfter)), 10)
}

// appendSFString appends s as a Structured Field String (RFC 9651 3.3.3):
// quoted, with '"' and '\' escaped. Bytes outside printable ASCII, which an
// sf-string cannot hold, become '?'.
func appendSFString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c > 0x7e:
			dst = append(dst, '?')
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
