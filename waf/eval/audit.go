package eval

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rampart-proxy/rampart/waf"
)

// AttachAudit reads the audit log at path once it has been quiet for a
// moment (at most wait), and sets the Rules of each result from the
// events of its request (none: no rule matched). results are in the order
// sent by r. The proxy queues a request's event before it answers, and
// its writer flushes whenever its queue is empty: once the file stops
// growing, the run's events are in it.
func (r *Remote) AttachAudit(results []Result, path string, wait time.Duration) error {
	const quiet = 300 * time.Millisecond
	deadline := time.Now().Add(wait)
	last, since := int64(-1), time.Now()
	for {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("eval: audit log: %w", err)
		}
		if fi.Size() != last {
			last, since = fi.Size(), time.Now()
		}
		if time.Since(since) >= quiet || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rules, err := readAuditRules(path, r.IDPrefix)
	if err != nil {
		return err
	}
	for i := range results {
		results[i].Rules = scoring(rules[r.requestID(i)])
	}
	return nil
}

// readAuditRules returns the rule ids of the events whose request id
// starts with prefix, by request id.
func readAuditRules(path, prefix string) (map[string][]int, error) {
	if prefix == "" {
		prefix = "eval-"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rules := map[string][]int{}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && strings.Contains(string(line), prefix) {
			var e waf.Event
			if json.Unmarshal(line, &e) == nil && strings.HasPrefix(e.RequestID, prefix) {
				for _, m := range e.Rules {
					rules[e.RequestID] = append(rules[e.RequestID], m.ID)
				}
			}
		}
		if err == io.EOF {
			return rules, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
