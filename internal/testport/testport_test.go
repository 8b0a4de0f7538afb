package testport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrOutsideEphemeralRange(t *testing.T) {
	lo, hi := freeRange()
	if hi-lo < 1000 {
		t.Fatalf("range [%d, %d) too small", lo, hi)
	}
	seen := map[string]bool{}
	for range 200 {
		addr := Addr(t)
		if seen[addr] {
			t.Fatalf("%s given twice", addr)
		}
		seen[addr] = true
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q: %v", addr, err)
		}
		n, _ := strconv.Atoi(port)
		if n < lo || n >= hi {
			t.Fatalf("port %d outside [%d, %d)", n, lo, hi)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		l.Close()
	}
	// A listener on port 0 is never given a port from the range.
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if n >= lo && n < hi {
			t.Fatalf("port 0 listener got %d, inside [%d, %d)", n, lo, hi)
		}
	}
}
