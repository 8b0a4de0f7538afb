package cache

import (
	"sync"
	"time"
)

// Flights coalesces concurrent misses: the first request for a key leads
// (it goes upstream), the others wait for it and then look the key up
// again. A leader must call Done, whatever happens to its request.
type Flights struct {
	mu sync.Mutex // guards m
	m  map[string]*Flight
}

// Flight is one key's request in progress.
type Flight struct {
	done chan struct{}
	fs   *Flights
	key  string
	once sync.Once
}

// NewFlights returns an empty set of flights.
func NewFlights() *Flights { return &Flights{m: make(map[string]*Flight)} }

// Join returns the flight for key, and whether the caller leads it (a
// new flight) rather than joining one in progress.
func (fs *Flights) Join(key []byte) (f *Flight, leader bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[string(key)]; f != nil {
		return f, false
	}
	f = &Flight{done: make(chan struct{}), fs: fs, key: string(key)}
	fs.m[f.key] = f
	return f, true
}

// Busy reports whether a flight for key is in progress.
func (fs *Flights) Busy(key []byte) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[string(key)] != nil
}

// Len is the number of flights in progress.
func (fs *Flights) Len() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.m)
}

// Wait waits for the leader to be done, up to timeout; it reports
// whether it was.
func (f *Flight) Wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return true
	case <-t.C:
		return false
	}
}

// Done ends the flight: its waiters go on. Calls after the first do
// nothing.
func (f *Flight) Done() {
	f.once.Do(func() {
		f.fs.mu.Lock()
		if f.fs.m[f.key] == f {
			delete(f.fs.m, f.key)
		}
		f.fs.mu.Unlock()
		close(f.done)
	})
}
