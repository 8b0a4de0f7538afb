package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one request of the load, well above the upstream
// read timeout (5s) so that a slow target shows as a 504, not a timeout.
const requestTimeout = 10 * time.Second

// maxLag is how far a worker may fall behind its schedule and still catch
// up.
const maxLag = time.Second

// kind is one sort of request of the mix.
type kind int

const (
	kindGet      kind = iota // GET through the WAF route, answered by the demo's catch-all
	kindGetSlow              // GET /slow: in flight long enough to meet an upstream kill
	kindPost                 // POST /echo through the WAF route
	kindPostSlow             // POST /slow: a non-idempotent request that can meet a kill
	kindMem                  // GET on the route with the memory rate limit
	kindPing                 // GET of the respond route
	kindAttack               // a request the CRS must refuse with 403
	numKinds
)

var kindNames = [numKinds]string{"GET", "GET /slow", "POST /echo", "POST /slow", "GET /mem/", "GET /ping", "attack"}

// mix returns the kind of the seq-th request, out of every hundred: 35
// GET, 5 slow GET, 25 POST, 5 slow POST, 20 GET on the memory limit route,
// 8 respond-route GET and 2 attacks. Multiplying by 37 (prime to 100)
// scatters each kind over the hundred, so that the slow ones do not come
// in a row and hold a worker back.
func mix(seq int) kind {
	switch n := seq * 37 % 100; {
	case n < 2:
		return kindAttack
	case n < 27:
		return kindPost
	case n < 32:
		return kindPostSlow
	case n < 37:
		return kindGetSlow
	case n < 72:
		return kindGet
	case n < 92:
		return kindMem
	default:
		return kindPing
	}
}

// attacks are answered 403 by the CRS at paranoia level 1 (SQL injection,
// XSS, path traversal).
var attacks = []string{
	"/search?id=1%27%20OR%20%271%27%3D%271",
	"/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
	"/files?name=..%2F..%2F..%2Fetc%2Fpasswd",
}

// failKey is one row of the failure table.
type failKey struct {
	cause  string
	method string
	// unavoidable marks a non-idempotent request that was in flight to an
	// upstream when it was killed: the proxy cannot know whether the
	// target applied it, so it must not send it again.
	unavoidable bool
}

// stats are the load's counters, shared by the workers.
type stats struct {
	done    atomic.Int64 // requests answered or failed
	ok      atomic.Int64 // answered as expected (attacks refused included)
	blocked atomic.Int64 // attacks refused with 403
	failed  atomic.Int64 // failures, the unavoidable ones included
	dials   atomic.Int64 // client connections opened to Rampart

	byKind   [numKinds]atomic.Int64 // answered as expected, by kind
	upstream [numUpstreams]atomic.Int64
	ping     [2]atomic.Int64 // respond-route answers, by variant
	rlHeader atomic.Int64    // rate-limited routes' answers with the RateLimit field naming the policy
	rlNone   atomic.Int64    // ... without it

	mu       sync.Mutex // guards the maps below
	failures map[failKey]int64
	examples map[failKey]string // the first occurrence of each
}

func newStats() *stats {
	return &stats{failures: map[failKey]int64{}, examples: map[failKey]string{}}
}

func (s *stats) fail(k failKey, detail string) {
	s.failed.Add(1)
	s.mu.Lock()
	s.failures[k]++
	if _, ok := s.examples[k]; !ok {
		s.examples[k] = detail
	}
	s.mu.Unlock()
}

// avoidable counts the failures that are not unavoidable.
func (s *stats) avoidable() (n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.failures {
		if !k.unavoidable {
			n += v
		}
	}
	return n
}

// killLog records when upstreams were killed: from just before the signal
// to when the process was reaped.
type killLog struct {
	mu    sync.Mutex // guards spans
	spans [][2]time.Time
}

// begin opens a span at from that lasts until end closes it; until then it
// covers everything after from.
func (k *killLog) begin(from time.Time) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans = append(k.spans, [2]time.Time{from, from.Add(24 * time.Hour)})
	return len(k.spans) - 1
}

// end closes the span that begin opened.
func (k *killLog) end(i int, to time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.spans[i][1] = to
}

// overlaps reports whether a request that ran from start to end was in
// flight while an upstream was being killed.
func (k *killLog) overlaps(start, end time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.spans {
		if start.Before(s[1]) && end.After(s[0]) {
			return true
		}
	}
	return false
}

// loader drives the load: a fixed number of workers, each with its own
// client holding one keep-alive connection, each paced to rate/workers
// requests a second. Since a worker never has two requests in flight, a
// second dial by the same worker means that its connection was closed.
type loader struct {
	base    string // http://127.0.0.1:PORT
	workers int
	rate    int
	st      *stats
	kills   *killLog
}

func newLoader(base string, workers, rate int, st *stats, kills *killLog) *loader {
	return &loader{base: base, workers: workers, rate: rate, st: st, kills: kills}
}

// newClient returns a worker's client: one connection, counted when dialed.
func (l *loader) newClient() *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			l.st.dials.Add(1)
			return d.DialContext(ctx, network, addr)
		},
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// run starts the workers and returns when ctx ends and every request in
// flight has finished.
func (l *loader) run(ctx context.Context) {
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(l.workers) / float64(l.rate))
	for w := range l.workers {
		wg.Go(func() {
			c := l.newClient()
			defer c.CloseIdleConnections()
			l.worker(ctx, c, w, interval)
		})
	}
	wg.Wait()
}

// worker sends one request every interval. A worker that falls behind by
// more than maxLag (slow answers) skips ahead rather than bursting to catch
// up.
func (l *loader) worker(ctx context.Context, c *http.Client, w int, interval time.Duration) {
	next := time.Now().Add(interval * time.Duration(w) / time.Duration(l.workers))
	for seq := w * 37; ; seq++ {
		if d := time.Until(next); d > 0 && !sleepCtx(ctx, d) {
			return
		}
		if ctx.Err() != nil {
			return
		}
		next = next.Add(interval)
		if now := time.Now(); now.Sub(next) > maxLag {
			next = now
		}
		l.do(c, w, seq)
	}
}

// do sends the seq-th request of worker w with c and records the outcome. Its
// context is not the run's: a request in flight when the run ends is let
// finish.
func (l *loader) do(c *http.Client, w, seq int) {
	k := mix(seq)
	method, path, body := http.MethodGet, "", []byte(nil)
	switch k {
	case kindGet:
		path = fmt.Sprintf("/api/items/%d?page=%d", seq%1000, seq%7)
	case kindGetSlow:
		path = "/slow?ms=40"
	case kindPost:
		method, path = http.MethodPost, "/echo"
		body = fmt.Appendf(nil, `{"worker":%d,"seq":%d,"note":"soak"}`, w, seq)
	case kindPostSlow:
		method, path = http.MethodPost, "/slow?ms=40"
		body = fmt.Appendf(nil, `{"worker":%d,"seq":%d}`, w, seq)
	case kindMem:
		path = fmt.Sprintf("/mem/items/%d", seq%1000)
	case kindPing:
		path = "/ping"
	case kindAttack:
		path = attacks[seq%len(attacks)]
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, l.base+path, bytes.NewReader(body))
	if err != nil {
		panic(err) // the URLs above are well formed
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = nil, nil, 0
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "rampart-soak/1")
	req.Header.Set("Accept", "*/*")
	req.Header.Set("X-Soak", "1")

	start := time.Now()
	resp, err := c.Do(req)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		_ = resp.Body.Close()
	}
	end := time.Now()
	l.st.done.Add(1)
	if err != nil {
		cause := "connection error"
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			cause = "timeout"
		}
		l.st.fail(failKey{cause: cause, method: method}, fmt.Sprintf("%s %s: %v", method, path, err))
		return
	}
	l.check(k, method, path, body, resp, got, start, end)
}

// check classifies an answer.
func (l *loader) check(k kind, method, path string, sent []byte, resp *http.Response, got []byte, start, end time.Time) {
	status := resp.StatusCode
	detail := fmt.Sprintf("%s %s: %d %q", method, path, status, truncate(got, 120))
	if k == kindAttack {
		if status == http.StatusForbidden {
			l.st.blocked.Add(1)
			l.st.ok.Add(1)
			l.st.byKind[k].Add(1)
			return
		}
		l.st.fail(failKey{cause: fmt.Sprintf("attack not blocked (%d)", status), method: method}, detail)
		return
	}
	switch status {
	case http.StatusOK:
	case http.StatusBadGateway:
		unavoidable := method != http.MethodGet && l.kills.overlaps(start, end)
		l.st.fail(failKey{cause: "502", method: method, unavoidable: unavoidable}, detail)
		return
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		l.st.fail(failKey{cause: fmt.Sprint(status), method: method}, detail)
		return
	default:
		l.st.fail(failKey{cause: fmt.Sprintf("unexpected status %d", status), method: method}, detail)
		return
	}
	if !bodyOK(k, sent, got, l.st) {
		l.st.fail(failKey{cause: "wrong body", method: method}, detail)
		return
	}
	if k != kindPing {
		up := resp.Header.Get("X-Upstream")
		if n := len(up); n > 1 && up[0] == 'u' && up[1] >= '0' && int(up[1]-'0') < numUpstreams {
			l.st.upstream[up[1]-'0'].Add(1)
		}
		policy := sharedPolicy
		if k == kindMem {
			policy = localPolicy
		}
		if strings.Contains(resp.Header.Get("RateLimit"), `"`+policy+`"`) {
			l.st.rlHeader.Add(1)
		} else {
			l.st.rlNone.Add(1)
		}
	}
	l.st.ok.Add(1)
	l.st.byKind[k].Add(1)
}

// bodyOK checks that the answer is the one the upstream (or the respond
// route) gives for this request.
func bodyOK(k kind, sent, got []byte, st *stats) bool {
	switch k {
	case kindGet, kindMem:
		return bytes.Contains(got, []byte(`"method": "GET"`))
	case kindPost:
		return bytes.Equal(got, sent)
	case kindGetSlow, kindPostSlow:
		return bytes.Contains(got, []byte("slept"))
	case kindPing:
		switch string(got) {
		case pingA:
			st.ping[0].Add(1)
			return true
		case pingB:
			st.ping[1].Add(1)
			return true
		}
	}
	return false
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
