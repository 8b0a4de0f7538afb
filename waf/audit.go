package waf

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/corazawaf/coraza/v3/types"
)

// DefaultAuditQueue is how many events may wait for the writer before new
// ones are dropped.
const DefaultAuditQueue = 4096

// MaxMatchedData bounds the matched data of a rule in an audit event (as
// ModSecurity bounds logdata).
const MaxMatchedData = 512

// Event is one audit log line: a transaction that matched a rule (or was
// refused). The JSON names are a contract with log pipelines.
type Event struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	ClientIP  string    `json:"client_ip"`
	Route     string    `json:"route"`
	Policy    string    `json:"policy"`
	Method    string    `json:"method"`
	URI       string    `json:"uri"`
	// Action is blocked or detected.
	Action string `json:"action"`
	// Status is the status sent (blocked) or that block mode would have
	// sent (detected); 0 when the request would have passed.
	Status int `json:"status"`
	// AnomalyScore is the inbound anomaly score.
	AnomalyScore int         `json:"anomaly_score"`
	Rules        []RuleMatch `json:"rules"`
}

// RuleMatch is one matched rule in an Event.
type RuleMatch struct {
	ID       int    `json:"id"`
	Msg      string `json:"msg,omitempty"`
	Severity string `json:"severity,omitempty"`
	// Target is the variable that matched, such as ARGS:q.
	Target string `json:"target,omitempty"`
	// Targets are every variable that matched, Target first, when the
	// rule matched more than one (at most MaxTargets): what an exclusion
	// by target must name (rampart waf report).
	Targets []string `json:"targets,omitempty"`
	// Data is the rule's logdata, or else the matched value, cut to
	// MaxMatchedData bytes.
	Data string `json:"data,omitempty"`
}

// redacted replaces matched data that would disclose a credential.
const redacted = "[redacted]"

// isSecret reports whether a matched variable holds a credential: cookies,
// and the Authorization, Proxy-Authorization, Cookie and Set-Cookie headers.
func isSecret(variable, key string) bool {
	switch strings.ToUpper(variable) {
	case "REQUEST_COOKIES", "REQUEST_COOKIES_NAMES", "RESPONSE_COOKIES":
		return variable != "REQUEST_COOKIES_NAMES"
	case "REQUEST_HEADERS", "RESPONSE_HEADERS":
		switch strings.ToLower(key) {
		case "authorization", "proxy-authorization", "cookie", "set-cookie":
			return true
		}
	}
	return false
}

// event builds the audit event of v's transaction. It copies every string:
// the request's buffers are reused once the handler returns.
func (v *Verdict) event(tx types.Transaction, matched []types.MatchedRule) *Event {
	e := &Event{
		Time:         time.Now().UTC(),
		RequestID:    string(v.info.ID),
		ClientIP:     v.info.ClientIP.String(),
		Route:        v.info.Route,
		Policy:       v.p.name,
		Method:       clone(v.method),
		URI:          clone(v.uri),
		Action:       v.Action.String(),
		Status:       v.Status,
		AnomalyScore: v.Score,
		Rules:        make([]RuleMatch, 0, len(matched)),
	}
	if e.Action == "pass" {
		e.Action = ActionDetected.String()
	}
	if e.Status == 0 {
		if d, ok := tx.(interface{ DetectionOnlyInterruption() *types.Interruption }); ok {
			if it := d.DetectionOnlyInterruption(); it != nil {
				e.Status = it.Status
				if e.Status == 0 {
					e.Status = 403
				}
			}
		}
	}
	for _, m := range matched {
		if !isLogged(m) {
			continue
		}
		r := m.Rule()
		rm := RuleMatch{ID: r.ID(), Msg: clone(m.Message()), Data: cut(m.Data())}
		if s := r.Severity(); s != types.RuleSeverityUnset {
			rm.Severity = s.String()
		}
		secret := false
		for _, md := range m.MatchedDatas() {
			if isSecret(md.Variable().Name(), md.Key()) {
				secret = true
			}
		}
		if mds := m.MatchedDatas(); len(mds) > 0 {
			md := mds[0]
			rm.Target = target(md)
			if rm.Data == "" {
				rm.Data = cut(md.Value())
			}
			for _, md := range mds[1:] {
				if len(rm.Targets) == MaxTargets {
					break
				}
				if t := target(md); t != rm.Target && !slices.Contains(rm.Targets, t) {
					if rm.Targets == nil {
						rm.Targets = append(rm.Targets, rm.Target)
					}
					rm.Targets = append(rm.Targets, t)
				}
			}
		}
		if secret {
			// The rule matched a credential: its log data embeds the
			// value, so none of it is written.
			rm.Data = redacted
		}
		e.Rules = append(e.Rules, rm)
	}
	if v.note != 0 {
		e.Rules = v.note.matches(e.Rules, v.p)
		if e.Status == 0 && v.note.overBudget() {
			e.Status = 503 // what block mode would have sent
		}
	}
	return e
}

// MaxTargets bounds the Targets of a rule in an audit event.
const MaxTargets = 16

// target names the variable md matched: VARIABLE or VARIABLE:key.
func target(md types.MatchData) string {
	t := md.Variable().Name()
	if k := md.Key(); k != "" {
		t += ":" + cut(k)
	}
	return t
}

func clone(s string) string { return string([]byte(s)) }

// cut copies s, cut to MaxMatchedData bytes on a character boundary.
func cut(s string) string {
	if len(s) <= MaxMatchedData {
		return clone(s)
	}
	n := MaxMatchedData
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return clone(s[:n]) + "…"
}

// AuditLog writes events, one JSON line each, from its own goroutine. Send
// never blocks: when the queue is full the event is dropped and counted.
type AuditLog struct {
	path    string
	ch      chan *Event
	done    chan struct{}
	closer  io.Closer // nil for stdout, stderr and injected writers
	dropped atomic.Uint64
	failed  atomic.Uint64
	written atomic.Uint64
	once    sync.Once
	mu      sync.RWMutex // send holds it shared, Close exclusively
	closed  bool         // guarded by mu
	refs    int          // guarded by AuditLogs.mu
}

// NewAuditLog starts a writer of events to w, queueing at most queue events
// (DefaultAuditQueue when queue <= 0).
func NewAuditLog(w io.Writer, queue int) *AuditLog {
	if queue <= 0 {
		queue = DefaultAuditQueue
	}
	a := &AuditLog{ch: make(chan *Event, queue), done: make(chan struct{})}
	go a.run(w)
	return a
}

// openAuditLog opens path: stdout, stderr or a file appended to.
func openAuditLog(path string) (*AuditLog, error) {
	var w io.Writer
	var c io.Closer
	switch path {
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, err
		}
		w, c = f, f
	}
	a := NewAuditLog(w, 0)
	a.path, a.closer = path, c
	return a, nil
}

// send queues e, or drops it when the queue is full or the log closed (a
// request that outlived its policy).
func (a *AuditLog) send(e *Event) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		a.dropped.Add(1)
		return
	}
	select {
	case a.ch <- e:
	default:
		a.dropped.Add(1)
	}
}

// run writes queued events, flushing whenever the queue is empty.
func (a *AuditLog) run(w io.Writer) {
	defer close(a.done)
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for e := range a.ch {
		if err := enc.Encode(e); err != nil {
			a.failed.Add(1)
		} else {
			a.written.Add(1)
		}
		if len(a.ch) == 0 && bw.Flush() != nil {
			a.failed.Add(1)
			bw.Reset(w)
		}
	}
	_ = bw.Flush()
}

// Dropped returns how many events were dropped because the queue was full.
func (a *AuditLog) Dropped() uint64 { return a.dropped.Load() }

// Failed returns how many events or flushes failed to be written.
func (a *AuditLog) Failed() uint64 { return a.failed.Load() }

// Written returns how many events were encoded.
func (a *AuditLog) Written() uint64 { return a.written.Load() }

// Close writes the queued events and stops the writer; later events are
// dropped.
func (a *AuditLog) Close() error {
	var err error
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		close(a.ch)
		a.mu.Unlock()
		<-a.done
		if a.closer != nil {
			err = a.closer.Close()
		}
	})
	return err
}

// AuditLogs shares audit logs by path between policies and across
// reloads: two policies with the same audit_log write through one writer.
type AuditLogs struct {
	mu   sync.Mutex // guards logs and each log's refs
	logs map[string]*AuditLog
}

// NewAuditLogs returns an empty set.
func NewAuditLogs() *AuditLogs { return &AuditLogs{logs: make(map[string]*AuditLog)} }

// Open returns the log at path, opening it on first use. Each Open is
// matched by a release (Policy.Close).
func (s *AuditLogs) Open(path string) (*AuditLog, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.logs[path]; a != nil {
		a.refs++
		return a, nil
	}
	a, err := openAuditLog(path)
	if err != nil {
		return nil, err
	}
	a.refs = 1
	s.logs[path] = a
	return a, nil
}

// release drops one reference to a and closes it after the last.
func (s *AuditLogs) release(a *AuditLog) error {
	s.mu.Lock()
	a.refs--
	last := a.refs == 0
	if last {
		delete(s.logs, a.path)
	}
	s.mu.Unlock()
	if last {
		return a.Close()
	}
	return nil
}

// Dropped returns the events dropped by every open log.
func (s *AuditLogs) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, a := range s.logs {
		n += a.Dropped()
	}
	return n
}
