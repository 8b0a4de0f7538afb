package testnet

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// TestServeClosesAtTheEnd: a handler blocked on a connection the client
// keeps open returns when the test ends, and each connection is counted.
func TestServeClosesAtTheEnd(t *testing.T) {
	returned := make(chan struct{}, 2)
	t.Run("inner", func(t *testing.T) {
		s := Listen(t, func(c net.Conn) {
			defer func() { returned <- struct{}{} }()
			_, _ = bufio.NewReader(c).ReadString('\n') // blocks until closed
		})
		for i := 0; i < 2; i++ {
			c, err := net.Dial("tcp", s.Addr())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.Accepted() < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := s.Accepted(); got != 2 {
			t.Fatalf("Accepted: got %d; want 2", got)
		}
	})
	// The inner test's cleanup has run: both handlers returned.
	for i := 0; i < 2; i++ {
		select {
		case <-returned:
		default:
			t.Fatalf("handler %d still running after the test ended", i)
		}
	}
}
