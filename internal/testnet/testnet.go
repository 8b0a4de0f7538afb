// Package testnet serves test listeners: the accept loop, the goroutine
// per connection and the cleanup that every test upstream needs, written
// once. At the end of the test the listener is closed, the connections
// still open are closed, and the cleanup waits for every handler to
// return, so that no handler outlives its test.
package testnet

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Server accepts on a listener until the test ends.
type Server struct {
	ln       net.Listener
	accepted atomic.Int64

	mu   sync.Mutex // guards open
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

// Serve accepts connections on ln and runs handle for each in its own
// goroutine, until t ends. handle need not close its connection.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) *Server {
	s := &Server{ln: ln, open: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.open[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
					_ = c.Close()
				}()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

// Listen listens on a free loopback port and serves it as Serve does.
func Listen(t testing.TB, handle func(net.Conn)) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, ln, handle)
}

// Addr is the listener's address, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Accepted counts the connections accepted so far.
func (s *Server) Accepted() int64 { return s.accepted.Load() }

func (s *Server) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
