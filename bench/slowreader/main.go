// Command slowreader shows what clients that stop reading do to a proxy's
// upstream connections (issue 17, finding 6).
//
// It starts an upstream (in this process) that answers GET /large with a
// body of -size bytes and anything else with "ok", then the Rampart binary
// -rampart with one listener, one route and that upstream, whose
// max_conns_per_target is -max-conns, and the listener limits as given by
// -limits (empty: the defaults). -readers clients send GET /large and never
// read. From then on a fresh client sends GET / every -interval for
// -duration, each with a 10 s timeout, and the outcome of each is printed;
// the summary says how long requests were refused.
//
//	go build -o /tmp/rampart ./cmd/rampart
//	go run ./bench/slowreader -rampart /tmp/rampart -duration 100s
//
// Output, one line per probe and a summary, for scripts:
//
//	probe t=1.0s status=503 took=2.00s
//	summary readers=2 max_conns=2 probes=100 ok=35 refused=65 first_ok_s=66.0 last_refused_s=65.0
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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("rampart", "", "path of the rampart binary to run (required)")
	readers := flag.Int("readers", 2, "clients that ask for the large response and never read it")
	maxConns := flag.Int("max-conns", 2, "the upstream's max_conns_per_target")
	size := flag.Int64("size", 1<<30, "size of the large response in bytes")
	duration := flag.Duration("duration", 100*time.Second, "how long the probing client runs")
	interval := flag.Duration("interval", time.Second, "time between two probes")
	limits := flag.String("limits", "", `listener limits, YAML flow mapping content (e.g. "send_timeout: 5s"); empty: the defaults`)
	flag.Parse()
	if *bin == "" {
		fatalf("-rampart is required")
	}

	upAddr, stopUp := startUpstream(*size)
	defer stopUp()
	proxyAddr := freePort()
	dir, err := os.MkdirTemp("", "slowreader")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	cfg := fmt.Sprintf(`listeners:
  web:
    address: %s
    limits: {%s}
upstreams:
  app:
    max_conns_per_target: %d
    targets: [{url: "http://%s"}]
routes:
  - upstream: app
access_log: {path: "off"}
`, proxyAddr, *limits, *maxConns, upAddr)
	cfgFile := filepath.Join(dir, "rampart.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		fatalf("%v", err)
	}
	cmd := exec.Command(*bin, "run", "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		fatalf("start rampart: %v", err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if !waitReady(proxyAddr, 10*time.Second) {
		fatalf("rampart did not answer on %s", proxyAddr)
	}

	for i := 0; i < *readers; i++ {
		c, err := stalledReader(proxyAddr)
		if err != nil {
			fatalf("stalled reader %d: %v", i, err)
		}
		defer c.Close()
	}
	time.Sleep(200 * time.Millisecond) // the readers' requests reach the upstream

	type result struct {
		at     time.Duration
		status int
		took   time.Duration
		err    error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	start := time.Now()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for at := time.Duration(0); at < *duration; at = time.Since(start) {
		<-tick.C
		wg.Add(1)
		go func(at time.Duration) {
			defer wg.Done()
			t0 := time.Now()
			st, err := get(proxyAddr)
			r := result{at: at, status: st, took: time.Since(t0), err: err}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
			line := fmt.Sprintf("probe t=%.1fs status=%d took=%.2fs", at.Seconds(), st, r.took.Seconds())
			if err != nil {
				line += " error=" + strconv.Quote(err.Error())
			}
			fmt.Println(line)
		}(time.Since(start))
	}
	wg.Wait()

	ok, refused := 0, 0
	firstOK, lastRefused := -1.0, -1.0
	for _, r := range results {
		if r.status == 200 {
			ok++
			if firstOK < 0 || r.at.Seconds() < firstOK {
				firstOK = r.at.Seconds()
			}
			continue
		}
		refused++
		lastRefused = max(lastRefused, r.at.Seconds())
	}
	fmt.Printf("summary readers=%d max_conns=%d probes=%d ok=%d refused=%d first_ok_s=%.1f last_refused_s=%.1f\n",
		*readers, *maxConns, len(results), ok, refused, firstOK, lastRefused)
}

// startUpstream serves GET /large with size bytes, anything else with "ok".
func startUpstream(size int64) (string, func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/large" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		piece := make([]byte, 64<<10)
		for sent := int64(0); sent < size; sent += int64(len(piece)) {
			if _, err := w.Write(piece[:min(int64(len(piece)), size-sent)]); err != nil {
				return
			}
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }
}

// freePort returns a loopback address nothing listens on at the moment.
func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("%v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(addr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if st, err := get(addr); err == nil && st == 200 {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// stalledReader asks for the large response with a small receive buffer
// and reads nothing.
func stalledReader(addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "GET /large HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// get sends GET / on a fresh connection and returns the status.
func get(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, errors.New("bad status line " + strconv.Quote(line))
	}
	return strconv.Atoi(f[1])
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "slowreader: "+format+"\n", args...)
	os.Exit(1)
}
