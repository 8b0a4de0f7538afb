// Package testport gives tests loopback TCP ports to hand to servers that
// bind them later: Rampart's listeners in a config, Pebble, redis-server.
//
// A port taken by listening on port 0 and closing again lies in the
// kernel's ephemeral range (net.ipv4.ip_local_port_range). Until the server
// binds it, any outgoing connection of any process on the machine may take
// it as its source port, and the next listener on port 0 may be given it;
// with test packages running side by side, both happen. So the ports given
// here are drawn at random below that range, where neither lands.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Addr returns a loopback TCP address on which nothing listened a moment
// ago, never one given out before in this process.
func Addr(t testing.TB) string {
	t.Helper()
	addr, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Port is Addr's port.
func Port(t testing.TB) int {
	t.Helper()
	_, port, _ := net.SplitHostPort(Addr(t))
	n, _ := strconv.Atoi(port)
	return n
}

// Pick is Addr for callers without a testing.TB.
func Pick() (string, error) {
	given.mu.Lock()
	defer given.mu.Unlock()
	lo, hi := freeRange()
	for range 1000 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo)))
		if given.addrs[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // in use
		}
		l.Close()
		given.addrs[addr] = true
		return addr, nil
	}
	return "", fmt.Errorf("testport: no free loopback port in [%d, %d)", lo, hi)
}

// given holds the addresses Pick returned.
var given = struct {
	mu    sync.Mutex // guards addrs
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeRange returns the ports Pick draws from: the 10,000 below the
// ephemeral range, or above it when it starts too low to leave room.
func freeRange() (lo, hi int) {
	first, last := 32768, 60999 // Linux's default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, errA := strconv.Atoi(f[0])
			z, errZ := strconv.Atoi(f[1])
			if errA == nil && errZ == nil && a <= z {
				first, last = a, z
			}
		}
	}
	switch {
	case first >= 11024:
		return first - 10000, first
	case last <= 55535:
		return last + 1, last + 10001
	}
	return 1024, 65536 // no room outside it: anywhere
}
