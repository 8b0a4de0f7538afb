package http1

import (
	"sync"
	"sync/atomic"
	"time"
)

// Workers runs request bursts on long-lived goroutines, whose stacks have
// grown to what request handling needs. Idle workers wait on a stack (the
// most recently used is reused first, its stack and caches warm); a janitor
// ends those idle for longer than maxIdle. One Workers serves every
// listener of a process.
type Workers struct {
	// busy counts the request bursts being served (not those lingering
	// for the client's next request). The upstream client reads it
	// (Client.Workers) to decide whether to yield before reading an answer.
	busy atomic.Int64

	mu     sync.Mutex // guards the fields below
	idle   []*worker
	closed bool
	ticks  int64 // the janitor's ticks so far: the clock idle workers are stamped with
	// maxIdle is how many ticks a worker may stay idle.
	maxIdle int64
	stop    chan struct{}
}

type worker struct {
	work chan job // the zero job asks the worker to exit
	last int64    // the janitor tick at which it became idle
}

// job is a request burst on an HTTP/1.1 connection, or a function (Go).
type job struct {
	cn *conn
	fn func()
}

// janitorTick is the janitor's period: the resolution of maxIdle. Idle
// workers are stamped with the janitor's tick count, not the time, so that
// a burst does not pay for reading the clock.
const janitorTick = time.Second

// NewWorkers starts a worker pool; Close ends it.
func NewWorkers() *Workers {
	p := &Workers{maxIdle: int64(10 * time.Second / janitorTick), stop: make(chan struct{})}
	go p.janitor()
	return p
}

// Busy is the number of request bursts being served.
func (p *Workers) Busy() int64 {
	if p == nil {
		return 0
	}
	return p.busy.Load()
}

// run hands cn to an idle worker, or starts one.
func (p *Workers) run(cn *conn) { p.start(job{cn: cn}) }

// Go runs fn on a worker, counted as busy while it runs: another wire
// (HTTP/2's streams) gets the grown stacks, and the upstream client's
// yield before reading an answer when other requests are in flight. fn
// must not panic; Go does not wait for it.
func (p *Workers) Go(fn func()) { p.start(job{fn: fn}) }

// start hands j to an idle worker, or starts one.
func (p *Workers) start(j job) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.work <- j
		return
	}
	p.mu.Unlock()
	w := &worker{work: make(chan job, 1)}
	w.work <- j
	go p.serve(w)
}

func (p *Workers) serve(w *worker) {
	for j := range w.work {
		switch {
		case j.cn != nil:
			p.busy.Add(1)
			keep := j.cn.serveBurst()
			p.busy.Add(-1)
			j.cn.result <- keep
		case j.fn != nil:
			p.busy.Add(1)
			j.fn()
			p.busy.Add(-1)
		default:
			return
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		w.last = p.ticks
		p.idle = append(p.idle, w)
		p.mu.Unlock()
	}
}

// janitor ends workers idle beyond maxIdle, oldest first.
func (p *Workers) janitor() {
	t := time.NewTicker(janitorTick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.ticks++
			cutoff := p.ticks - p.maxIdle
			n := 0
			for n < len(p.idle) && p.idle[n].last < cutoff {
				p.idle[n].work <- job{}
				n++
			}
			p.idle = append(p.idle[:0], p.idle[n:]...)
			p.mu.Unlock()
		}
	}
}

// Close ends the idle workers and the janitor; busy workers end as their
// connections close.
func (p *Workers) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	for _, w := range p.idle {
		w.work <- job{}
	}
	p.idle = nil
}
