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

// markerPayload is an attack every CRS policy detects: the marker request
// that ends a run, whose audit event says the run's events are written.
const markerPayload = "<script>alert(document.cookie)</script>"

// Marker sends the request that ends a run sent by r: once its audit event
// is in the log, so are those of every earlier request (the log is
// written in order).
func (r *Remote) Marker() (id string, err error) {
	c := &Case{Name: "marker", Req: Build(ClassXSS, PlaceQuery, EncPlain, markerPayload, 0)}
	id = r.requestID(r.sent)
	_, err = r.Inspect(c)
	return id, err
}

// AttachAudit reads the audit log at path, waiting up to wait for the
// marker's event, and sets the Rules of each result from the events of its
// request (none: no rule matched). results are in the order sent by r.
func (r *Remote) AttachAudit(results []Result, path, marker string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		rules, found, err := readAuditRules(path, r.IDPrefix, marker)
		if err != nil {
			return err
		}
		if found || time.Now().After(deadline) {
			if !found {
				return fmt.Errorf("eval: %s: the run's last event (request %s) did not appear within %v: is it the audit log of the policy evaluated?", path, marker, wait)
			}
			for i := range results {
				results[i].Rules = scoring(rules[r.requestID(i)])
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readAuditRules returns the rule ids of the events whose request id
// starts with prefix, by request id, and whether the marker's event was
// read.
func readAuditRules(path, prefix, marker string) (map[string][]int, bool, error) {
	if prefix == "" {
		prefix = "eval-"
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	rules := map[string][]int{}
	found := false
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && strings.Contains(string(line), prefix) {
			var e waf.Event
			if json.Unmarshal(line, &e) == nil && strings.HasPrefix(e.RequestID, prefix) {
				for _, m := range e.Rules {
					rules[e.RequestID] = append(rules[e.RequestID], m.ID)
				}
				if e.RequestID == marker {
					found = true
				}
			}
		}
		if err == io.EOF {
			return rules, found, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}
