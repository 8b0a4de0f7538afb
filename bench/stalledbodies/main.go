// Command stalledbodies measures what stalled uploads cost a proxy that
// buffers request bodies for inspection (a WAF route).
//
// It reads the proxy's resident set (VmRSS of -pid), opens -n connections to
// -addr, and on each sends the header of a POST whose Content-Length is -size
// and then -send bytes of its body, and stops there: the proxy waits for the
// rest, holding what it buffered. After -settle it reads VmRSS again
// ("during") and counts the connections the proxy answered early (a 503 when
// its buffer budget is spent), then closes every connection, waits -settle
// (plus -linger) again and reads VmRSS a last time ("after"). With -metrics
// it also reports the Go heap in use from the proxy's /metrics.
//
// Everything is bounded: -n connections, each written once, and three
// waits.
//
// Output, one line, for scripts:
//
//	stalled conns=100 failed=0 answered=0 status=- rss_before_kib=67000 rss_during_kib=238000 rss_after_kib=238000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "address of the proxy")
	pid := flag.String("pid", "", "PID of the proxy process whose VmRSS is read")
	n := flag.Int("n", 100, "number of stalled uploads")
	size := flag.Int("size", 1000000, "declared Content-Length of each upload")
	send := flag.Int("send", 512<<10, "body bytes sent before stalling")
	host := flag.String("host", "bench", "Host header")
	path := flag.String("path", "/", "request path (a WAF route)")
	settle := flag.Duration("settle", 3*time.Second, "wait before each reading of VmRSS")
	linger := flag.Duration("linger", 0, "extra wait before the last reading (e.g. 150s: past the Go runtime's forced GC every 2 minutes)")
	timeout := flag.Duration("timeout", 10*time.Second, "dial and write timeout per connection")
	metricsURL := flag.String("metrics", "", "the proxy's /metrics URL: also report its Go heap in use (go_memstats_heap_inuse_bytes) at each reading")
	flag.Parse()
	if *pid == "" {
		fatalf("-pid is required")
	}
	if *send > *size {
		*send = *size
	}

	before, heapBefore := mustRSS(*pid), heapInUse(*metricsURL)
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Content-Length: %d\r\nUser-Agent: rampart-stalledbodies\r\n\r\na=", *path, *host, *size)
	part := make([]byte, *send-2)
	for i := range part {
		part[i] = 'x'
	}

	var (
		mu     sync.Mutex // guards conns, failed
		conns  []net.Conn
		failed int
		wg     sync.WaitGroup
	)
	for range *n {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", *addr, *timeout)
			if err == nil {
				_ = c.SetWriteDeadline(time.Now().Add(*timeout))
				if _, err = c.Write(append([]byte(head), part...)); err != nil {
					c.Close()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			conns = append(conns, c)
		})
	}
	wg.Wait()

	time.Sleep(*settle)
	during, heapDuring := mustRSS(*pid), heapInUse(*metricsURL)
	answered, statuses := earlyAnswers(conns)
	for _, c := range conns {
		_ = c.Close()
	}
	time.Sleep(*settle + *linger)
	after, heapAfter := mustRSS(*pid), heapInUse(*metricsURL)
	fmt.Printf("stalled conns=%d failed=%d answered=%d status=%s rss_before_kib=%d rss_during_kib=%d rss_after_kib=%d",
		len(conns), failed, answered, statuses, before, during, after)
	if *metricsURL != "" {
		fmt.Printf(" heap_before_kib=%d heap_during_kib=%d heap_after_kib=%d", heapBefore, heapDuring, heapAfter)
	}
	fmt.Println()
}

// earlyAnswers counts the connections on which the proxy has answered
// already, and names the statuses seen (status:count, comma separated).
func earlyAnswers(conns []net.Conn) (int, string) {
	counts := map[int]int{}
	answered := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
		if err != nil && line == "" {
			continue
		}
		answered++
		f := strings.Fields(line)
		st := 0
		if len(f) > 1 {
			st, _ = strconv.Atoi(f[1])
		}
		counts[st]++
	}
	if len(counts) == 0 {
		return 0, "-"
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d:%d", k, counts[k])
	}
	return answered, strings.Join(parts, ",")
}

// heapInUse returns go_memstats_heap_inuse_bytes of the proxy's metrics
// at url in KiB; -1 without url or when the reading fails.
func heapInUse(url string) int64 {
	if url == "" {
		return -1
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return int64(v) >> 10
			}
		}
	}
	return -1
}

// mustRSS returns VmRSS of pid in KiB.
func mustRSS(pid string) int64 {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		fatalf("%v", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				v, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return v
				}
			}
		}
	}
	fatalf("/proc/%s/status: no VmRSS line", pid)
	return 0
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stalledbodies: "+format+"\n", args...)
	os.Exit(1)
}
