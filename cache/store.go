package cache

import (
	"context"
	"errors"
	"time"
)

// Store keeps entries by key. A store is safe for concurrent use; the
// entries it returns are shared and must not be changed.
type Store interface {
	// Get returns the entry under key, nil when there is none.
	Get(ctx context.Context, key string) (*Entry, error)
	// Set stores e under key for ttl.
	Set(ctx context.Context, key string, e *Entry, ttl time.Duration) error
	// Purge deletes the entry under key and, with prefix, every entry
	// whose key starts with key ("": every entry). It returns how many
	// were deleted.
	Purge(ctx context.Context, key string, prefix bool) (int, error)
	// Close releases the store's resources.
	Close() error
}

// ErrUnavailable is returned by a shared store that is failing or paused
// after a failure: the request goes on as a miss.
var ErrUnavailable = errors.New("cache: store unavailable")

// ErrBusy is returned by a store that drops a write because too many are
// in flight.
var ErrBusy = errors.New("cache: too many writes in flight")
