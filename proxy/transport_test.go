package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// dialTimeoutConn connects a timeoutConn to a fresh loopback listener and
// returns it with the server's end of the connection.
func dialTimeoutConn(t *testing.T, read, write time.Duration) (*timeoutConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr := &transport{connect: time.Second, read: read, write: write}
	c, err := tr.dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tc, ok := c.(*timeoutConn)
	if !ok || tc.rc == nil {
		t.Fatalf("dial gave %T, want a timeoutConn with a raw conn", c)
	}
	return tc, srv
}

// TestWriteAwaitReturnsWithAnswer: an awaited write returns once the answer
// is readable, and the answer is read whole after it.
func TestWriteAwaitReturnsWithAnswer(t *testing.T) {
	tc, srv := dialTimeoutConn(t, 5*time.Second, 5*time.Second)
	const delay = 100 * time.Millisecond
	go func() {
		br := bufio.NewReader(srv)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		time.Sleep(delay)
		_, _ = srv.Write([]byte("answer to " + line))
	}()
	tc.await = true
	start := time.Now()
	n, err := tc.Write([]byte("question\n"))
	if err != nil || n != len("question\n") {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if waited := time.Since(start); waited < delay {
		t.Errorf("the awaited Write returned after %v, before the answer (sent after %v)", waited, delay)
	}
	if tc.await {
		t.Error("await is still set after the Write")
	}
	buf := make([]byte, 64)
	n, err = tc.Read(buf)
	if err != nil || string(buf[:n]) != "answer to question\n" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}

	// A plain Write (await not set) returns at once.
	start = time.Now()
	if _, err := tc.Write([]byte("again\n")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited >= delay {
		t.Errorf("a plain Write took %v: it waited for the answer", waited)
	}
}

// TestWriteAwaitTimeout: a target that never answers fails the Read after
// the awaited write with a timeout, within about the read timeout.
func TestWriteAwaitTimeout(t *testing.T) {
	const read = 150 * time.Millisecond
	tc, _ := dialTimeoutConn(t, read, time.Second)
	tc.await = true
	start := time.Now()
	if _, err := tc.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatalf("Write: %v (the request went out: the wait's timeout is the Read's to report)", err)
	}
	_, err := tc.Read(make([]byte, 16))
	if !isTimeout(err) {
		t.Fatalf("Read after an unanswered request: %v, want a timeout", err)
	}
	if took := time.Since(start); took < read*9/10 || took > read*3/2 {
		t.Errorf("timed out after %v, want about %v", took, read)
	}
}

// TestWriteAwaitStaleDeadline: a connection idle for longer than the read
// timeout (as a pooled one is) gets a fresh deadline for the awaited answer.
func TestWriteAwaitStaleDeadline(t *testing.T) {
	const read = 100 * time.Millisecond
	tc, srv := dialTimeoutConn(t, read, time.Second)
	if err := tc.readDeadline(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * read) // the deadline set above is now in the past
	go func() {
		b := make([]byte, 16)
		if _, err := srv.Read(b); err == nil {
			_, _ = srv.Write([]byte("ok"))
		}
	}()
	tc.await = true
	if _, err := tc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	n, err := tc.Read(b)
	if err != nil || string(b[:n]) != "ok" {
		t.Fatalf("Read = %q, %v", b[:n], err)
	}
}

// TestWriteAwaitPartial: a request larger than the socket takes at once is
// written whole, the rest the usual way.
func TestWriteAwaitPartial(t *testing.T) {
	tc, srv := dialTimeoutConn(t, 5*time.Second, 5*time.Second)
	tcp := tc.Conn.(*net.TCPConn)
	if err := tcp.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than the socket buffers hold
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // let the socket fill up first
		b, _ := io.ReadAll(io.LimitReader(srv, int64(len(big))))
		got <- b
		_, _ = srv.Write([]byte("done"))
	}()
	tc.await = true
	n, err := tc.Write(big)
	if err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(big))
	}
	if tc.sent >= len(big) {
		t.Fatalf("the socket took all %d bytes in one write: the test did not reach the fallback", len(big))
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the target received %d bytes that differ from the %d sent", len(b), len(big))
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(tc, b); err != nil || string(b) != "done" {
		t.Fatalf("Read = %q, %v", b, err)
	}
}

// TestWriteAwaitClosedTarget: a target that closed the connection while it
// was idle gives a failure that the pool treats as a stale connection,
// whether it shows in the write or in the read after it.
func TestWriteAwaitClosedTarget(t *testing.T) {
	tc, srv := dialTimeoutConn(t, 2*time.Second, time.Second)
	srv.Close()
	time.Sleep(20 * time.Millisecond) // the FIN arrives while the connection is idle
	tc.await = true
	start := time.Now()
	_, err := tc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	if err == nil {
		_, err = tc.Read(make([]byte, 16))
	}
	if err == nil || !isConnGone(err) {
		t.Fatalf("request on a closed connection: %v, want EOF, reset or broken pipe", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the failure took %v: the wait missed the close", took)
	}
}
