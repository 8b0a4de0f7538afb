package http1

import (
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
	cl := NewClient(ClientConfig{Addr: ln.Addr().String(), Connect: time.Second, Read: read, Write: write})
	c, err := cl.dial(ln.Addr().String())
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
	if !ok {
		t.Fatalf("dial gave %T, want a timeoutConn", c)
	}
	return tc, srv
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
		if _, err := c.Read(nil); err != nil { // sets the read deadline
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
}
