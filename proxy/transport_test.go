package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialTimeoutConn connects a timeoutConn to a fresh loopback listener and
// returns it with the server's end of the connection.
func dialTimeoutConn(t *testing.T, read, write time.Duration) (*timeoutConn, net.Conn) {
	return dialTimeoutConnBuf(t, read, write, 0)
}

// dialTimeoutConnBuf is dialTimeoutConn with the server's receive buffer
// set to rcvbuf bytes (0: the default) from the start.
func dialTimeoutConnBuf(t *testing.T, read, write time.Duration, rcvbuf int) (*timeoutConn, net.Conn) {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf == 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
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
	if !ok || tc.aw == nil {
		t.Fatalf("dial gave %T, want a timeoutConn with an awaiter", c)
	}
	return tc, srv
}

// sendAwait buffers msg in a writer over tc and sends it with flushAwait.
func sendAwait(tc *timeoutConn, msg []byte) error {
	bw := bufio.NewWriterSize(tc, 64<<10)
	if _, err := bw.Write(msg); err != nil {
		return err
	}
	return tc.flushAwait(bw)
}

// TestFlushAwaitReturnsWithAnswer: the flush returns once the answer is
// readable, and the answer is read whole after it.
func TestFlushAwaitReturnsWithAnswer(t *testing.T) {
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
	start := time.Now()
	if err := sendAwait(tc, []byte("question\n")); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < delay {
		t.Errorf("flushAwait returned after %v, before the answer (sent after %v)", waited, delay)
	}
	buf := make([]byte, 64)
	n, err := tc.Read(buf)
	if err != nil || string(buf[:n]) != "answer to question\n" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

// TestFlushAwaitTimeout: a target that never answers fails the Read after
// the flush with a timeout, after about the read timeout (not twice it).
func TestFlushAwaitTimeout(t *testing.T) {
	const read = 150 * time.Millisecond
	tc, _ := dialTimeoutConn(t, read, time.Second)
	start := time.Now()
	if err := sendAwait(tc, []byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatalf("flush: %v (the request went out: the timeout is the Read's to report)", err)
	}
	_, err := tc.Read(make([]byte, 16))
	if !isTimeout(err) {
		t.Fatalf("Read after an unanswered request: %v, want a timeout", err)
	}
	if took := time.Since(start); took < read*9/10 || took > read*3/2 {
		t.Errorf("timed out after %v, want about %v", took, read)
	}
	// The connection is not broken by it: a later answer is read.
	if _, err := tc.Read(make([]byte, 16)); !isTimeout(err) {
		t.Fatalf("second Read: %v, want another timeout (nothing was sent)", err)
	}
}

// TestFlushAwaitStaleDeadline: a connection idle for longer than the read
// timeout (as a pooled one is) gets a fresh deadline for the answer.
func TestFlushAwaitStaleDeadline(t *testing.T) {
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
	if err := sendAwait(tc, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	n, err := tc.Read(b)
	if err != nil || string(b[:n]) != "ok" {
		t.Fatalf("Read = %q, %v", b[:n], err)
	}
}

// TestFlushAwaitLarge: a flush larger than the socket takes at once blocks
// in the usual write (the target reads it slowly) and still waits for the
// answer afterwards, with the read timeout counted from the end of the
// write.
func TestFlushAwaitLarge(t *testing.T) {
	const read = 300 * time.Millisecond
	tc, srv := dialTimeoutConnBuf(t, read, 5*time.Second, 4096)
	if err := tc.Conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: more than both socket buffers hold
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(2 * read) // longer than the read timeout: the write waits for it
		b, _ := io.ReadAll(io.LimitReader(srv, int64(len(big))))
		got <- b
		time.Sleep(read / 2)
		_, _ = srv.Write([]byte("done"))
	}()
	start := time.Now()
	if err := sendAwait(tc, big); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2*read {
		t.Fatalf("the flush took %v: it did not wait for the target to read (the test needs it to)", took)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("the target received %d bytes that differ from the %d sent", len(b), len(big))
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(tc, b); err != nil || string(b) != "done" {
		t.Fatalf("Read = %q, %v", b, err)
	}
}

// TestFlushAwaitClosedTarget: a target that closed the connection while it
// was idle gives a failure that the pool treats as a stale connection, at
// once, whether it shows in the flush or in the read after it.
func TestFlushAwaitClosedTarget(t *testing.T) {
	tc, srv := dialTimeoutConn(t, 2*time.Second, time.Second)
	srv.Close()
	time.Sleep(20 * time.Millisecond) // the FIN arrives while the connection is idle
	start := time.Now()
	err := sendAwait(tc, []byte("GET / HTTP/1.1\r\n\r\n"))
	if err == nil {
		_, err = tc.Read(make([]byte, 16))
	}
	if err == nil || !isConnGone(err) {
		t.Fatalf("request on a closed connection: %v, want EOF, reset or broken pipe", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the failure took %v: the wait missed the close", took)
	}
	if strings.Contains(err.Error(), "timeout") {
		t.Errorf("a closed connection reported as %v", err)
	}
}

// TestConnAliveDeadlinePast: the check of a pooled connection looks at the
// socket even when its read deadline has long passed (a connection idle for
// longer than the read timeout): a closed one is not alive, an idle one is.
// (A raw read fails at once on such a deadline without looking, and the
// check used to call the closed connection alive: a POST sent on it failed
// with 502 rather than going out on a fresh connection.)
func TestConnAliveDeadlinePast(t *testing.T) {
	const read = 50 * time.Millisecond
	idle, _ := dialTimeoutConn(t, read, time.Second)
	closed, srv := dialTimeoutConn(t, read, time.Second)
	for _, c := range []*timeoutConn{idle, closed} {
		if err := c.readDeadline(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(2 * read)
	srv.Close()
	time.Sleep(20 * time.Millisecond) // the FIN arrives
	if !connAlive(idle) {
		t.Error("an idle connection with its read deadline past: not alive; want alive")
	}
	if connAlive(closed) {
		t.Error("a connection the target closed, read deadline past: alive; want not")
	}
	_, plain := dialTimeoutConn(t, 0, 0)
	if !connAlive(plain) {
		t.Error("the target's end of a connection, idle: not alive; want alive")
	}
}
