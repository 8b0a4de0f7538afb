package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// sample is Rampart's state at one moment of the soak.
type sample struct {
	at         time.Duration
	rssKiB     int64
	goroutines int
	done       int64   // requests finished so far
	rate       float64 // requests a second since the previous sample
	failed     int64   // failures so far, the unavoidable ones included
}

// sampler records a sample every interval.
type sampler struct {
	e       *env
	st      *stats
	out     func(string, ...any)
	start   time.Time
	samples []sample // written by take only, which run calls in turn
}

func (s *sampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.take(time.Since(s.start))
		}
	}
}

// take records one sample; at 0 it starts the clock.
func (s *sampler) take(at time.Duration) {
	if at == 0 {
		s.start = time.Now()
	}
	smp := sample{at: at, done: s.st.done.Load(), failed: s.st.failed.Load(), goroutines: -1}
	if pid := s.e.rampart.pid(); pid != 0 {
		smp.rssKiB, _ = rssKiB(pid)
	}
	if m := scrapeMetrics(s.e.adminURL()); m != nil {
		if g, ok := m["go_goroutines"]; ok {
			smp.goroutines = int(g)
		}
	}
	if n := len(s.samples); n > 0 {
		prev := s.samples[n-1]
		if d := (smp.at - prev.at).Seconds(); d > 0 {
			smp.rate = float64(smp.done-prev.done) / d
		}
	}
	s.samples = append(s.samples, smp)
	s.out("sample: RSS %.1f MiB, goroutines %d, %.0f req/s, %d requests, %d failed",
		float64(smp.rssKiB)/1024, smp.goroutines, smp.rate, smp.done, smp.failed)
}

// scrapeMetrics returns the admin listener's metrics, one value per series
// (name plus labels as written), or nil when it cannot be read.
func scrapeMetrics(admin string) map[string]float64 {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(admin + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}

// countLog counts Rampart's log lines at WARN and above, by message; a line
// that is not JSON (a panic's trace) counts under its text.
func countLog(path string) map[string]int {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || strings.HasPrefix(string(line), "--- soak:") {
			continue
		}
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) != nil {
			counts["(not JSON) "+truncate(line, 80)]++
			continue
		}
		if rec.Level == "WARN" || rec.Level == "ERROR" {
			counts[rec.Level+" "+rec.Msg]++
		} else if rec.Msg == "retrying on another target" {
			counts["INFO "+rec.Msg]++
		}
	}
	return counts
}

// report holds one soak's outcome.
type report struct {
	o            *options
	st           *stats
	f            *faults
	samples      []sample
	elapsed      time.Duration
	final        map[string]float64
	rampartAlive bool
	rampartClean bool
	logCounts    map[string]int
	interrupted  bool
}

// print writes the report and returns whether the soak passed.
func (r *report) print(w io.Writer) bool {
	var problems []string
	st := r.st
	done := st.done.Load()
	fmt.Fprintf(w, "\n== soak report (%s) ==\n", r.elapsed.Round(time.Second))
	fmt.Fprintf(w, "requests: %d (%.0f/s); as expected: %d; failed: %d\n",
		done, float64(done)/r.elapsed.Seconds(), st.ok.Load(), st.failed.Load())
	for k := range numKinds {
		fmt.Fprintf(w, "  %-12s %d\n", kindNames[k], st.byKind[k].Load())
	}
	fmt.Fprintf(w, "attacks refused with 403: %d\n", st.blocked.Load())
	fmt.Fprintf(w, "answers by upstream: u0 %d, u1 %d, u2 %d\n", st.upstream[0].Load(), st.upstream[1].Load(), st.upstream[2].Load())
	fmt.Fprintf(w, "respond route: variant a %d, variant b %d\n", st.ping[0].Load(), st.ping[1].Load())
	fmt.Fprintf(w, "rate-limited answers with the RateLimit field naming the policy: %d, without: %d\n", st.rlHeader.Load(), st.rlNone.Load())
	dials := st.dials.Load()
	fmt.Fprintf(w, "client connections opened: %d (workers: %d)\n", dials, r.o.Workers)
	if extra := dials - int64(r.o.Workers); extra > 0 {
		// A reload must not close an established connection, and nothing
		// else in the soak should.
		problems = append(problems, fmt.Sprintf("%d client connections were closed and opened again", extra))
	}

	r.f.mu.Lock()
	fmt.Fprintf(w, "faults: %d upstream kills (%d restarts), %d redis kills (%d restarts)\n",
		r.f.upKills, r.f.upRestarts, r.f.redisKills, r.f.redisRestarts)
	fmt.Fprintf(w, "reloads: %d by file watch, %d by SIGHUP, %d by the admin API; %d seen served\n",
		r.f.reloads[reloadFile], r.f.reloads[reloadSIGHUP], r.f.reloads[reloadAPI], r.f.reloadsSeen)
	problems = append(problems, r.f.problems...)
	r.f.mu.Unlock()
	if r.final != nil {
		var keys []string
		for k := range r.final {
			if strings.HasPrefix(k, "rampart_config_reloads_total") || strings.HasPrefix(k, "rampart_ratelimit_store_degraded") {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s %g\n", k, r.final[k])
		}
	}

	r.printFailures(w)
	if n := st.avoidable(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d requests failed that the faults do not explain", n))
	}
	if len(r.logCounts) > 0 {
		fmt.Fprintln(w, "\nrampart log, WARN and above (and retries), by message:")
		keys := make([]string, 0, len(r.logCounts))
		for k := range r.logCounts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %6d  %s\n", r.logCounts[k], k)
			if strings.Contains(k, "panic") {
				problems = append(problems, "rampart logged a panic")
			}
		}
	}

	problems = append(problems, r.printSeries(w)...)
	if !r.rampartAlive {
		problems = append(problems, "rampart exited during the soak")
	}
	if !r.rampartClean {
		problems = append(problems, "rampart did not stop within its grace period after SIGTERM")
	}
	if r.interrupted {
		problems = append(problems, "interrupted")
	}
	r.f.mu.Lock()
	if r.f.upKills == 0 || r.f.redisKills == 0 || r.f.reloadsSeen == 0 {
		problems = append(problems, "a fault was never injected: run longer")
	}
	r.f.mu.Unlock()

	fmt.Fprintln(w)
	if len(problems) == 0 {
		fmt.Fprintln(w, "PASS")
		return true
	}
	for _, p := range problems {
		fmt.Fprintln(w, "FAIL:", p)
	}
	return false
}

// printFailures writes the failure table.
func (r *report) printFailures(w io.Writer) {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	fmt.Fprintln(w, "\nfailures by cause:")
	if len(r.st.failures) == 0 {
		fmt.Fprintln(w, "  none")
		return
	}
	keys := make([]failKey, 0, len(r.st.failures))
	for k := range r.st.failures {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.unavoidable != b.unavoidable {
			return b.unavoidable
		}
		if a.cause != b.cause {
			return a.cause < b.cause
		}
		return a.method < b.method
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  cause\tmethod\tcount\tverdict\tfirst example")
	for _, k := range keys {
		verdict := "FAILURE"
		if k.unavoidable {
			verdict = "unavoidable (non-idempotent, in flight at a kill)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\n", k.cause, k.method, r.st.failures[k], verdict, r.st.examples[k])
	}
	_ = tw.Flush()
}

// printSeries writes the samples and checks that RSS and goroutines level
// off.
func (r *report) printSeries(w io.Writer) (problems []string) {
	fmt.Fprintln(w, "\nseries:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t (s)\tRSS (MiB)\tgoroutines\treq/s\tfailed (cumulative)\t")
	for _, s := range r.samples {
		fmt.Fprintf(tw, "%.0f\t%.1f\t%d\t%.0f\t%d\t\n", s.at.Seconds(), float64(s.rssKiB)/1024, s.goroutines, s.rate, s.failed)
	}
	_ = tw.Flush()
	if len(r.samples) > 0 {
		first, last := r.samples[0], r.samples[len(r.samples)-1]
		fmt.Fprintf(w, "RSS %.1f -> %.1f MiB, goroutines %d -> %d\n",
			float64(first.rssKiB)/1024, float64(last.rssKiB)/1024, first.goroutines, last.goroutines)
	}
	rss := make([]float64, 0, len(r.samples))
	gor := make([]float64, 0, len(r.samples))
	for _, s := range r.samples[1:] { // the first is before any load
		if s.rssKiB == 0 || s.goroutines < 0 {
			problems = append(problems, fmt.Sprintf("sample at %s could not be taken", s.at.Round(time.Second)))
			continue
		}
		rss = append(rss, float64(s.rssKiB)/1024)
		gor = append(gor, float64(s.goroutines))
	}
	o := r.o
	fmt.Fprintf(w, "leveling rule: max(last third) <= max(middle third) * %.2f + slack (RSS %.0f MiB, goroutines %d)\n",
		1+o.LevelFraction, o.RSSSlackMiB, o.GoroutineSlack)
	for _, c := range []struct {
		name  string
		v     []float64
		slack float64
	}{{"RSS (MiB)", rss, o.RSSSlackMiB}, {"goroutines", gor, float64(o.GoroutineSlack)}} {
		mid, last, ok := leveled(c.v, o.LevelFraction, c.slack)
		verdict := "levels off"
		if !ok {
			verdict = "GROWS"
			problems = append(problems, fmt.Sprintf("%s does not level off: last third max %.1f > middle third max %.1f * %.2f + %.0f",
				c.name, last, mid, 1+o.LevelFraction, c.slack))
		}
		fmt.Fprintf(w, "  %-11s middle third max %.1f, last third max %.1f: %s\n", c.name, mid, last, verdict)
	}
	return problems
}

// leveled applies the leveling rule to a series: split in thirds, the
// last third's maximum may exceed the middle third's maximum by at most
// frac of it plus slack. Fewer than three values cannot be judged, and
// fail.
func leveled(v []float64, frac, slack float64) (midMax, lastMax float64, ok bool) {
	n := len(v)
	if n < 3 {
		return 0, 0, false
	}
	third := n / 3
	midMax = maxOf(v[third : n-third])
	lastMax = maxOf(v[n-third:])
	return midMax, lastMax, lastMax <= midMax*(1+frac)+slack
}

func maxOf(v []float64) float64 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}
