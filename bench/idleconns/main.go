// Command idleconns measures what an idle keep-alive connection costs a proxy in
// memory.
//
// It reads the proxy's resident set (VmRSS of -pid), opens -n connections to
// -addr, sends one small GET on each and reads the response, so the proxy holds
// -n served, now idle, keep-alive connections. After -settle it reads VmRSS again
// and prints the difference per connection, then closes every connection.
//
// The whole measurement must stay well under the proxy's idle timeout (60 s by
// default for Rampart, 75 s for nginx), or the proxy closes what we measure.
//
// Output, one line, for scripts:
//
//	idle conns=5000 failed=0 rss_before_kib=10240 rss_after_kib=60240 kib_per_conn=10.00
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rampart-proxy/rampart/bench/internal/proc"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "address of the proxy")
	n := flag.Int("n", 5000, "number of idle keep-alive connections")
	pids := flag.String("pid", "", "PID of the proxy process whose VmRSS is read; a comma-separated list is summed")
	host := flag.String("host", "bench", "Host header of the GET")
	path := flag.String("path", "/", "path of the GET")
	settle := flag.Duration("settle", 2*time.Second, "wait between opening the connections and reading VmRSS")
	parallel := flag.Int("parallel", 64, "connections opened at once")
	timeout := flag.Duration("timeout", 10*time.Second, "dial and response timeout per connection")
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

	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\nUser-Agent: rampart-idleconns\r\n\r\n")
	conns, failed, firstErr := openAll(*addr, *n, *parallel, *timeout, req)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections failed; first error: %v\n", failed, *n, firstErr)
	}
	if len(conns) == 0 {
		fatalf("no connection succeeded")
	}

	time.Sleep(*settle)
	after, err := proc.RSS(*pids)
	if err != nil {
		fatalf("%v", err)
	}
	// Check that the proxy kept the connections open while we measured: a
	// closed connection reads EOF at once.
	closed := countClosed(conns)
	if closed > 0 {
		fmt.Fprintf(os.Stderr, "idleconns: the proxy closed %d connections during the measurement\n", closed)
	}

	perConn := float64(after-before) / float64(len(conns))
	fmt.Printf("idle conns=%d failed=%d closed=%d rss_before_kib=%d rss_after_kib=%d kib_per_conn=%.2f\n",
		len(conns), failed, closed, before, after, perConn)
}

// openAll opens n connections, parallel at a time, each with one served request.
func openAll(addr string, n, parallel int, timeout time.Duration, req []byte) ([]net.Conn, int, error) {
	var (
		mu       sync.Mutex // guards the three below
		conns    = make([]net.Conn, 0, n)
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
				c, err := openOne(addr, timeout, req)
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

// openOne dials addr, sends req and reads a whole 200 response, leaving the
// connection open.
func openOne(addr string, timeout time.Duration, req []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	// A small reader: it is dropped once the response is read.
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	if resp.Close {
		c.Close()
		return nil, errors.New("the proxy asked to close the connection (Connection: close)")
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, errors.New("unexpected bytes after the response")
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// countClosed counts the connections the peer has closed: a non-blocking peek
// finds EOF (or an error) on a closed connection and nothing on an idle one.
func countClosed(conns []net.Conn) int {
	closed := 0
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok && proc.PeerClosed(tc) {
			closed++
		}
	}
	return closed
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "idleconns: "+format+"\n", args...)
	os.Exit(1)
}
