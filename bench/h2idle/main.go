// Command h2idle measures what an idle HTTP/2 connection costs a proxy in
// memory.
//
// It reads the proxy's resident set (VmRSS of -pid), opens -n TLS
// connections to -addr offering only "h2" by ALPN, and on each completes
// the HTTP/2 connection start: the client preface and an empty SETTINGS
// frame, the server's SETTINGS acknowledged, and the server's
// acknowledgement of ours read. No stream is opened. After -settle it reads
// VmRSS again and prints the difference per connection, then closes every
// connection. The frames are written and read by hand (a frame header is
// nine bytes): it needs nothing beyond the standard library.
//
// The whole measurement must stay well under the proxy's idle timeout for
// HTTP/2 connections, or the proxy closes what we measure; h2idle counts the
// connections found closed at the end.
//
// Output, one line, for scripts:
//
//	h2idle conns=2000 failed=0 closed=0 rss_before_kib=10240 rss_after_kib=60240 bytes_per_conn=25681
package main

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rampart-proxy/rampart/bench/internal/proc"
)

// The client connection preface (RFC 9113, section 3.4).
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Frame types and flags used here (RFC 9113, section 6).
const (
	frameSettings = 0x4
	frameGoAway   = 0x7
	flagAck       = 0x1
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18171", "address of the proxy's TLS+h2 listener")
	sni := flag.String("sni", "", "TLS server name (default: none)")
	n := flag.Int("n", 2000, "number of idle HTTP/2 connections")
	pids := flag.String("pid", "", "PID of the proxy process whose VmRSS is read; a comma-separated list is summed")
	settle := flag.Duration("settle", 2*time.Second, "wait between opening the connections and reading VmRSS")
	parallel := flag.Int("parallel", 32, "connections opened at once")
	timeout := flag.Duration("timeout", 10*time.Second, "dial and handshake timeout per connection")
	flag.Parse()

	if *pids == "" {
		fatalf("-pid is required")
	}
	if err := proc.RaiseNoFile(uint64(*n) + 256); err != nil {
		fatalf("%v", err)
	}
	before, err := proc.RSS(*pids)
	if err != nil {
		fatalf("%v", err)
	}

	cfg := &tls.Config{
		InsecureSkipVerify: true, // a benchmark's self-signed certificate
		ServerName:         *sni,
		NextProtos:         []string{"h2"},
	}
	conns, failed, firstErr := openAll(*addr, cfg, *n, *parallel, *timeout)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "h2idle: %d of %d connections failed; first error: %v\n", failed, *n, firstErr)
	}
	if len(conns) == 0 {
		fatalf("no connection succeeded")
	}

	time.Sleep(*settle)
	after, err := proc.RSS(*pids)
	if err != nil {
		fatalf("%v", err)
	}
	closed := countClosed(conns)
	if closed > 0 {
		fmt.Fprintf(os.Stderr, "h2idle: the proxy closed %d connections during the measurement\n", closed)
	}
	perConn := float64(after-before) * 1024 / float64(len(conns))
	fmt.Printf("h2idle conns=%d failed=%d closed=%d rss_before_kib=%d rss_after_kib=%d bytes_per_conn=%.0f\n",
		len(conns), failed, closed, before, after, perConn)
}

// openAll opens n connections, parallel at a time, each past the SETTINGS
// exchange. It returns the raw TCP connections under the TLS ones too, for
// countClosed.
func openAll(addr string, cfg *tls.Config, n, parallel int, timeout time.Duration) ([]*conn, int, error) {
	var (
		mu       sync.Mutex // guards the three below
		conns    = make([]*conn, 0, n)
		failed   int
		firstErr error
	)
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)

	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Go(func() {
			for range work {
				c, err := openOne(addr, cfg, timeout)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return conns, failed, firstErr
}

// conn is one idle HTTP/2 connection: the TLS connection and the TCP one
// under it.
type conn struct {
	tls *tls.Conn
	tcp *net.TCPConn
}

func (c *conn) Close() error { return c.tls.Close() }

// openOne dials addr, completes the TLS handshake with ALPN h2 and the
// HTTP/2 SETTINGS exchange, and leaves the connection open.
func openOne(addr string, cfg *tls.Config, timeout time.Duration) (*conn, error) {
	d := net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	fail := func(err error) (*conn, error) {
		_ = tc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return fail(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		return fail(fmt.Errorf("ALPN negotiated %q, not h2", p))
	}
	// The preface and an empty SETTINGS frame: the server's defaults are ours.
	hello := append([]byte(preface), frameHeader(0, frameSettings, 0, 0)...)
	if _, err := tc.Write(hello); err != nil {
		return fail(err)
	}
	var gotSettings, gotAck bool
	var hdr [9]byte
	// A server sends a handful of frames at the start (SETTINGS,
	// WINDOW_UPDATE, the ACK); 16 is plenty, and bounds the loop.
	for i := 0; i < 16 && !(gotSettings && gotAck); i++ {
		if _, err := io.ReadFull(tc, hdr[:]); err != nil {
			return fail(fmt.Errorf("reading a frame: %w", err))
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := hdr[3], hdr[4]
		if _, err := io.CopyN(io.Discard, tc, int64(length)); err != nil {
			return fail(fmt.Errorf("reading a frame's payload: %w", err))
		}
		switch {
		case typ == frameGoAway:
			return fail(errors.New("the server sent GOAWAY"))
		case typ == frameSettings && flags&flagAck != 0:
			gotAck = true
		case typ == frameSettings:
			gotSettings = true
			if _, err := tc.Write(frameHeader(0, frameSettings, flagAck, 0)); err != nil {
				return fail(err)
			}
		}
	}
	if !gotSettings || !gotAck {
		return fail(errors.New("no SETTINGS exchange in the server's first 16 frames"))
	}
	_ = tc.SetDeadline(time.Time{})
	return &conn{tls: tc, tcp: raw.(*net.TCPConn)}, nil
}

// frameHeader returns a frame header (RFC 9113, section 4.1).
func frameHeader(length int, typ, flags byte, stream uint32) []byte {
	h := []byte{byte(length >> 16), byte(length >> 8), byte(length), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(h[5:], stream&0x7fffffff)
	return h
}

// countClosed counts the connections the peer has closed: a non-blocking
// peek of the TCP socket finds EOF (or an error) on a closed connection and
// nothing, or a frame such as a PING, on an open one.
func countClosed(conns []*conn) int {
	closed := 0
	for _, c := range conns {
		if proc.PeerClosed(c.tcp) {
			closed++
		}
	}
	return closed
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "h2idle: "+format+"\n", args...)
	os.Exit(1)
}
