// Command tlshandshake measures full TLS handshakes per second against a
// server: -c workers each, in a loop until -d has passed, open a TCP
// connection, complete a handshake without resumption (no session cache, no
// tickets), send one GET with "Connection: close", read the response whole and
// close the socket with a reset (SO_LINGER 0), so that no TIME_WAIT entry
// accumulates on the client side and the local ports last.
//
// The key exchange group is pinned with -group (X25519 by default) so that
// every server is measured with the same key exchange, whatever its defaults.
// Certificates are not verified: the client's cost per handshake stays low and
// the same for every server.
//
// At the end it prints one line for bench/scenario_tls.sh:
//
//	RESULT handshakes=N duration_us=N p50_us=N p99_us=N errors=N resumed=N non200=N version=TLS1.3 group=X25519 cipher=...
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "server address")
	sni := flag.String("sni", "bench.rampart.test", "server name sent in the handshake")
	conns := flag.Int("c", 16, "concurrent workers")
	dur := flag.Duration("d", 10*time.Second, "length of the run")
	group := flag.String("group", "X25519", "key exchange group: X25519 or P256")
	version := flag.String("tls", "1.3", "TLS version: 1.2 or 1.3")
	path := flag.String("path", "/", "path of the GET")
	flag.Parse()

	conf := &tls.Config{
		ServerName:             *sni,
		InsecureSkipVerify:     true, // the same client cost for every server
		SessionTicketsDisabled: true,
		ClientSessionCache:     nil, // no resumption of any kind
		NextProtos:             []string{"http/1.1"},
	}
	switch *group {
	case "X25519":
		conf.CurvePreferences = []tls.CurveID{tls.X25519}
	case "P256":
		conf.CurvePreferences = []tls.CurveID{tls.CurveP256}
	default:
		log.Fatalf("unknown -group %q", *group)
	}
	switch *version {
	case "1.2":
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "1.3":
		conf.MinVersion, conf.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		log.Fatalf("unknown -tls %q", *version)
	}
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *sni + "\r\nConnection: close\r\n\r\n")

	var (
		handshakes, errs, resumed, non200 atomic.Int64
		mu                                sync.Mutex // guards the fields below
		lat                               []time.Duration
		state                             tls.ConnectionState
		errSample                         error
	)
	deadline := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			br := bufio.NewReaderSize(nil, 4096)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				cs, status, err := once(*addr, conf, req, br)
				if err != nil {
					errs.Add(1)
					mu.Lock()
					errSample = err
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
				handshakes.Add(1)
				if cs.DidResume {
					resumed.Add(1)
				}
				if status != http.StatusOK {
					non200.Add(1)
				}
				if len(mine) == 1 {
					mu.Lock()
					state = cs
					mu.Unlock()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) int64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()
	}
	if errSample != nil {
		fmt.Fprintf(os.Stderr, "tlshandshake: %d errors, e.g. %v\n", errs.Load(), errSample)
	}
	fmt.Printf("RESULT handshakes=%d duration_us=%d p50_us=%d p99_us=%d errors=%d resumed=%d non200=%d version=%s group=%s cipher=%s\n",
		handshakes.Load(), elapsed.Microseconds(), pct(0.50), pct(0.99), errs.Load(), resumed.Load(), non200.Load(),
		versionName(state.Version), state.CurveID, tls.CipherSuiteName(state.CipherSuite))
}

// once does one connection: handshake, GET, response, reset.
func once(addr string, conf *tls.Config, req []byte, br *bufio.Reader) (tls.ConnectionState, int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return tls.ConnectionState{}, 0, err
	}
	tcp := c.(*net.TCPConn)
	_ = tcp.SetLinger(0)
	defer tcp.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, 0, fmt.Errorf("handshake: %w", err)
	}
	if _, err := tc.Write(req); err != nil {
		return tls.ConnectionState{}, 0, fmt.Errorf("write: %w", err)
	}
	br.Reset(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return tls.ConnectionState{}, 0, fmt.Errorf("read: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil && !bytes.Contains([]byte(err.Error()), []byte("close notify")) {
		return tls.ConnectionState{}, 0, fmt.Errorf("body: %w", err)
	}
	return tc.ConnectionState(), resp.StatusCode, nil
}

func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	case 0:
		return "-"
	}
	return fmt.Sprintf("0x%04x", v)
}
