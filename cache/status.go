package cache

import (
	"strconv"
	"time"
)

// Status is one cache's member of a Cache-Status field (RFC 9211).
type Status struct {
	Hit bool
	// Fwd is why the request went upstream: "uri-miss", "vary-miss",
	// "miss", "request", "stale", "bypass" ("": it did not).
	Fwd string
	// FwdStatus is the status the upstream answered (0: not sent).
	FwdStatus int
	// TTL is the answer's freshness left, when HasTTL.
	TTL    time.Duration
	HasTTL bool
	// Stored says the answer was stored; Collapsed that the request
	// waited for another's.
	Stored, Collapsed bool
	// Detail is free text ("stale-while-revalidate").
	Detail string
}

// AppendStatus appends the member for the cache name to dst.
func AppendStatus(dst []byte, name string, s Status) []byte {
	dst = append(dst, name...)
	if s.Hit {
		dst = append(dst, "; hit"...)
	}
	if s.Fwd != "" {
		dst = append(dst, "; fwd="...)
		dst = append(dst, s.Fwd...)
	}
	if s.FwdStatus != 0 {
		dst = append(dst, "; fwd-status="...)
		dst = strconv.AppendInt(dst, int64(s.FwdStatus), 10)
	}
	if s.HasTTL {
		dst = append(dst, "; ttl="...)
		dst = strconv.AppendInt(dst, int64(s.TTL/time.Second), 10)
	}
	if s.Stored {
		dst = append(dst, "; stored"...)
	}
	if s.Collapsed {
		dst = append(dst, "; collapsed"...)
	}
	if s.Detail != "" {
		dst = append(dst, "; detail="...)
		dst = append(dst, s.Detail...)
	}
	return dst
}
