package crstest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Summary is the outcome of a run of many tests.
type Summary struct {
	Total, Passed int
	// Unexpected are the failures not listed as known.
	Unexpected []Result
	// Fixed are known failures that passed.
	Fixed []string
	// Failures are "NAME reason" of every failure, sorted.
	Failures []string
	// Fired are "NAME [ids]" of every test: the rules it fired, sorted, to
	// compare two engines' verdicts.
	Fired   []string
	Elapsed time.Duration
}

// String reports the pass rate.
func (s Summary) String() string {
	return fmt.Sprintf("%d/%d passed (%.2f%%), %d unexpected failures, %d listed failures now passing, in %v",
		s.Passed, s.Total, 100*float64(s.Passed)/float64(max(s.Total, 1)), len(s.Unexpected), len(s.Fixed), s.Elapsed.Round(time.Millisecond))
}

// RunFiles runs the tests of files that sel selects (nil: all), knowing
// which are expected to fail (see ReadExclusions).
func (r *Runner) RunFiles(files []*File, sel func(name string) bool, known map[string]string) Summary {
	var s Summary
	start := time.Now()
	for _, f := range files {
		for i := range f.Tests {
			tc := &f.Tests[i]
			if sel != nil && !sel(tc.Name) {
				continue
			}
			s.Total++
			res := r.Run(tc)
			ids := slices.Clone(res.Fired)
			sort.Ints(ids)
			s.Fired = append(s.Fired, fmt.Sprint(tc.Name, " ", slices.Compact(ids)))
			_, isKnown := known[tc.Name]
			switch {
			case res.Pass:
				s.Passed++
				if isKnown {
					s.Fixed = append(s.Fixed, tc.Name)
				}
			default:
				s.Failures = append(s.Failures, tc.Name+" "+res.Reason)
				if !isKnown {
					s.Unexpected = append(s.Unexpected, res)
				}
			}
		}
	}
	sort.Strings(s.Failures)
	s.Elapsed = time.Since(start)
	return s
}

// ReadExclusions reads the known failures, one "NAME reason" a line ("#"
// starts a comment line), by test name.
func ReadExclusions(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		out[name] = strings.TrimSpace(reason)
	}
	return out, sc.Err()
}

// Backend answers as the CRS test backend (albedo) does, so that it can
// serve as the upstream of the endpoint under test: POST /reflect returns
// the status, headers and body (or base64 encodedBody) given in its JSON
// body; anything else gets 200 "ok" as text/plain.
func Backend(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetContentType("text/plain")
	if string(ctx.Path()) != "/reflect" || !ctx.IsPost() {
		ctx.SetBodyString("ok")
		return
	}
	var spec struct {
		Status      int               `json:"status"`
		Headers     map[string]string `json:"headers"`
		Body        string            `json:"body"`
		EncodedBody string            `json:"encodedBody"`
	}
	if err := json.Unmarshal(ctx.PostBody(), &spec); err != nil {
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
		return
	}
	if spec.Status != 0 {
		ctx.SetStatusCode(spec.Status)
	}
	for k, v := range spec.Headers {
		ctx.Response.Header.Set(k, v)
	}
	body := []byte(spec.Body)
	if spec.EncodedBody != "" {
		body, _ = base64.StdEncoding.DecodeString(spec.EncodedBody)
	}
	ctx.SetBody(body)
}
