package http2

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// newWriteTest returns a frameConn over one end of a net.Pipe (a write
// blocks until the other end reads it) and the other end.
func newWriteTest(t *testing.T, cfg Config) (*frameConn, net.Conn) {
	t.Helper()
	srv, client := net.Pipe()
	t.Cleanup(func() { srv.Close(); client.Close() })
	cfg = cfg.withDefaults()
	return newFrameConn(srv, nil, &cfg), client
}

// TestWriteBehind checks the held writes reach the client whole and in
// order, that Write returns before the client reads, and that Close sends
// what is held.
func TestWriteBehind(t *testing.T) {
	fc, client := newWriteTest(t, Config{})
	var want []byte
	for i := range 5 {
		p := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
		want = append(want, p...)
		// The client reads nothing yet: a write straight to the pipe
		// would block here.
		if n, err := fc.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: got %d, %v; want %d, nil", i, n, err, len(p))
		}
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(client)
		got <- b
	}()
	if err := fc.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Errorf("got %d bytes; want the %d written, in order", len(b), len(want))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not get the bytes and the end of the connection")
	}
}

// TestWriteBehindBounded checks that Write blocks once maxHeld bytes wait
// for a client that does not read, and goes on when it reads.
func TestWriteBehindBounded(t *testing.T) {
	fc, client := newWriteTest(t, Config{})
	done := make(chan int, 1)
	go func() {
		p := make([]byte, 16<<10)
		n := 0
		for n < 4*maxHeld {
			if _, err := fc.Write(p); err != nil {
				break
			}
			n += len(p)
		}
		done <- n
	}()
	select {
	case n := <-done:
		t.Fatalf("got %d bytes written to a client that reads nothing; want Write to block after about %d", n, maxHeld)
	case <-time.After(300 * time.Millisecond):
	}
	go func() { _, _ = io.Copy(io.Discard, client) }()
	select {
	case n := <-done:
		if n != 4*maxHeld {
			t.Errorf("got %d bytes written; want %d", n, 4*maxHeld)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write stayed blocked after the client read")
	}
}

// TestWriteBehindFails checks that a failed write to the client fails the
// writes after it, and that Close does not wait longer than closeWait for
// a client that never reads.
func TestWriteBehindFails(t *testing.T) {
	t.Run("client gone", func(t *testing.T) {
		fc, client := newWriteTest(t, Config{})
		client.Close()
		_, _ = fc.Write([]byte("lost"))
		var err error
		for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			_, err = fc.Write([]byte("more"))
		}
		if err == nil {
			t.Fatal("got no error writing to a closed client; want one")
		}
	})
	t.Run("send timeout", func(t *testing.T) {
		fc, _ := newWriteTest(t, Config{SendTimeout: 100 * time.Millisecond})
		_, _ = fc.Write([]byte("never read"))
		var err error
		for deadline := time.Now().Add(5 * time.Second); err == nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			_, err = fc.Write([]byte("more"))
		}
		if err == nil {
			t.Fatal("got no error writing to a client that reads nothing past send_timeout; want one")
		}
	})
	t.Run("close waits at most closeWait", func(t *testing.T) {
		fc, _ := newWriteTest(t, Config{}) // no send_timeout
		_, _ = fc.Write([]byte("never read"))
		start := time.Now()
		_ = fc.Close()
		if d := time.Since(start); d > closeWait+2*time.Second {
			t.Errorf("got Close after %v; want at most about %v", d, closeWait)
		}
	})
}
