package http2

import (
	"runtime"
	"sync"
	"time"
)

// writeBehind coalesces x/net's writes to a client. x/net flushes its
// buffer whenever its write queue runs empty, which on a connection whose
// streams are answered one at a time is twice per response (HEADERS, then
// DATA): two TLS records and two system calls where an event loop would
// make one. frameConn.Write copies the bytes here and returns; a flush,
// started after the goroutines that are ready to run have had their turn
// (and queued their frames), writes everything held in one go.
//
// What x/net relied on is kept: a failed write fails every later Write
// (and closes the connection, so that the reader ends too); send_timeout
// bounds each write to the client (x/net's own deadlines are ignored, as
// they would bound only the copy); Write blocks while maxHeld bytes wait,
// so a client that does not read holds back x/net as before; Close sends
// what is held first (for up to closeWait).
type writeBehind struct {
	mu       sync.Mutex // guards the fields below
	cond     sync.Cond  // signalled when a flush has written, or failed
	held     []byte     // written by x/net, not yet sent
	spare    []byte     // the buffer being sent, then empty for reuse
	err      error      // the first failed write
	flushing bool       // a flush is scheduled or running
}

// maxHeld bounds the bytes held for the client: a few DATA frames.
const maxHeld = 64 << 10

// writeChunk is the most one write to the client sends: each has its own
// send_timeout deadline, so a client that reads slowly but steadily is
// not cut.
const writeChunk = 16 << 10

// heldPool keeps the buffers of finished flushes. A buffer is taken only
// while bytes are held, and none is made bigger than needed: a burst of
// new connections, each sending its SETTINGS, takes a few bytes each.
var heldPool sync.Pool // *[]byte

func (w *writeBehind) init() { w.cond.L = &w.mu }

// Write holds p for the next flush.
func (fc *frameConn) Write(p []byte) (int, error) {
	w := &fc.wb
	w.mu.Lock()
	for len(w.held) >= maxHeld && w.err == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return 0, err
	}
	if w.held == nil {
		w.held = getHeld()
	}
	w.held = append(w.held, p...)
	start := !w.flushing
	w.flushing = true
	w.mu.Unlock()
	if start {
		if run := fc.cfg.Run; run != nil {
			run(fc.flushFn)
		} else {
			go fc.flush()
		}
	}
	return len(p), nil
}

// SetWriteDeadline is ignored: x/net sets it around each Write to apply
// send_timeout (WriteByteTimeout), which flush applies itself.
func (fc *frameConn) SetWriteDeadline(time.Time) error { return nil }

// closeWait bounds how long Close waits for the held bytes to be sent, as
// x/net's own Close would end a write in flight at once: x/net's one
// second between a GOAWAY and closing the connection.
const closeWait = time.Second

// Close sends what is held, for up to closeWait, then closes the
// connection.
func (fc *frameConn) Close() error {
	w := &fc.wb
	w.mu.Lock()
	if w.flushing && w.err == nil {
		// Closing the connection fails the flush's write.
		t := time.AfterFunc(closeWait, func() { _ = fc.Conn.Close() })
		for w.flushing && w.err == nil {
			w.cond.Wait()
		}
		t.Stop()
	}
	w.mu.Unlock()
	return fc.Conn.Close()
}

// flush sends the held bytes until there are none.
func (fc *frameConn) flush() {
	// Let the goroutines that are ready run first: handlers finishing
	// their responses, and x/net's loop writing their frames.
	runtime.Gosched()
	w := &fc.wb
	w.mu.Lock()
	for len(w.held) > 0 && w.err == nil {
		buf := w.held
		w.held = w.spare[:0]
		w.mu.Unlock()
		err := fc.send(buf)
		w.mu.Lock()
		w.spare = buf[:0]
		if err != nil {
			w.err = err
		}
		w.cond.Broadcast()
	}
	w.flushing = false
	putHeld(w.held)
	putHeld(w.spare)
	w.held, w.spare = nil, nil
	err := w.err
	w.cond.Broadcast()
	w.mu.Unlock()
	if err != nil {
		_ = fc.Conn.Close() // x/net learns it from its reader
	}
}

// send writes buf to the client, each writeChunk within send_timeout.
func (fc *frameConn) send(buf []byte) error {
	d := fc.cfg.SendTimeout
	for len(buf) > 0 {
		n := min(len(buf), writeChunk)
		if d > 0 {
			if err := fc.Conn.SetWriteDeadline(time.Now().Add(d)); err != nil {
				return err
			}
		}
		if _, err := fc.Conn.Write(buf[:n]); err != nil {
			return err
		}
		buf = buf[n:]
	}
	return nil
}

func getHeld() []byte {
	if p, ok := heldPool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil // append makes one of the size needed
}

func putHeld(b []byte) {
	if cap(b) >= 512 && cap(b) <= 4*maxHeld {
		b = b[:0]
		heldPool.Put(&b)
	}
}
