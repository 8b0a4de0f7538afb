package waf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/config"
)

// ErrInvalidPolicy is wrapped by every error of Compile and Validate that
// is the policy's fault (not, say, an unreadable audit log).
var ErrInvalidPolicy = errors.New("waf: invalid policy")

// Hooks receive counts for the metrics package. Each may be nil. They are
// called on the request path, so they must be fast and must not block.
type Hooks struct {
	// Inspected is called once per inspected request with the outcome.
	Inspected func(policy string, a Action)
	// RuleMatched is called once per logged rule that matched a request.
	RuleMatched func(policy string, ruleID int)
	// OverBudget is called once per request or response body that could
	// not be held for inspection within the Budget: refused (block mode)
	// or passed uninspected (detect mode).
	OverBudget func(policy string)
	// Request is called once per inspected request after its request
	// phases, with the transaction still open: what the engine saw can be
	// read from it (tests compare it with what the upstream received). It
	// must not keep tx.
	Request func(policy string, tx types.Transaction)
}

// Options are what Compile needs besides the policy.
type Options struct {
	// BaseDir resolves relative rule_files and audit_log paths (the
	// config file's directory). Empty: the working directory.
	BaseDir string
	// AuditLogs opens audit logs by path, shared by policies and kept
	// across reloads. Nil: the policy opens its own, closed by Close.
	AuditLogs *AuditLogs
	// Audit, when set, receives the audit events of the policy whatever
	// its audit_log (tests; `rampart waf test`). The caller closes it.
	Audit *AuditLog
	// Hooks receive per-policy and per-rule counts.
	Hooks Hooks
	// Budget bounds the body bytes held for inspection, shared by every
	// policy given it (waf_buffer_limit). Nil: no bound.
	Budget *Budget

	// root serves the CRS instead of crsFS (the differential test's
	// reference engine). Nil: crsFS.
	root fs.FS
}

// Policy is one compiled WAF policy. It is immutable and safe for
// concurrent use; Close it when no request uses it any more.
type Policy struct {
	name      string
	mode      string
	cfg       *config.WAFPolicy
	waf       experimental.WAFWithOptions // nil when mode is off
	bodyLimit int64
	partial   bool // inspect the first bodyLimit bytes of larger bodies
	inspectRx bool // response inspection
	respLimit int64
	respCut   bool // inspect the first respLimit bytes of larger responses
	// scanMarkup: the xxe group is on (rule 9500202); the adapter shows its rules the
	// markup declarations of the raw body (markup.go).
	scanMarkup bool
	budget     *Budget
	root       fs.FS // nil: crsFS
	audit      *AuditLog
	auditSet   *AuditLogs // where audit came from; nil when injected
	hooks      Hooks
	rules      map[int]struct{} // ids of the loaded rules
	open       atomic.Int64     // transactions not yet closed
}

// Name returns the policy's name.
func (p *Policy) Name() string { return p.name }

// Mode returns off, detect or block.
func (p *Policy) Mode() string { return p.mode }

// OpenTransactions returns how many transactions are open: requests being
// inspected, or waiting for their response to be inspected.
func (p *Policy) OpenTransactions() int64 { return p.open.Load() }

// HasRule reports whether the rule id is loaded.
func (p *Policy) HasRule(id int) bool {
	_, ok := p.rules[id]
	return ok
}

// Close releases the policy's audit log if it opened it. Requests still
// being inspected finish normally.
func (p *Policy) Close() error {
	if p.auditSet != nil {
		set := p.auditSet
		p.auditSet = nil
		return set.release(p.audit)
	}
	return nil
}

// Compile builds the policy called name. A policy in mode off compiles to
// a Policy whose Inspect does nothing (use Validate to check its rules).
func Compile(name string, cfg *config.WAFPolicy, opt Options) (*Policy, error) {
	p := &Policy{name: name, mode: cfg.Mode, cfg: cfg, hooks: opt.Hooks, inspectRx: cfg.InspectResponse, budget: opt.Budget, root: opt.root}
	if p.mode == "" {
		p.mode = config.DefaultWAFMode
	}
	if p.mode == config.WAFModeOff {
		return p, nil
	}
	if err := p.build(opt.BaseDir); err != nil {
		return nil, err
	}
	switch {
	case opt.Audit != nil:
		p.audit = opt.Audit
	case cfg.AuditLog != "":
		logs := opt.AuditLogs
		if logs == nil {
			logs = NewAuditLogs()
		}
		a, err := logs.Open(resolve(opt.BaseDir, cfg.AuditLog))
		if err != nil {
			return nil, fmt.Errorf("waf.%s.audit_log: %w", name, err)
		}
		p.audit, p.auditSet = a, logs
	}
	return p, nil
}

// Validate compiles every policy (mode off included) and returns all their
// errors, each naming the policy. baseDir resolves relative rule files.
func Validate(policies map[string]*config.WAFPolicy, baseDir string) error {
	names := make([]string, 0, len(policies))
	for n := range policies {
		names = append(names, n)
	}
	sort.Strings(names)
	var errs []error
	for _, n := range names {
		cfg := policies[n]
		if cfg == nil {
			continue
		}
		p := &Policy{name: n, mode: cfg.Mode, cfg: cfg}
		if err := p.build(baseDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// build compiles the Coraza engine and checks the exclusions.
func (p *Policy) build(baseDir string) error {
	cfg := p.cfg
	p.bodyLimit = int64(cfg.RequestBodyLimit)
	if p.bodyLimit <= 0 {
		p.bodyLimit = config.DefaultRequestBodyLimit
	}
	if p.bodyLimit > maxRequestBodyLimit {
		return p.errorf("request_body_limit %d exceeds %d", p.bodyLimit, maxRequestBodyLimit)
	}
	p.partial = cfg.RequestBodyLimitAction == config.BodyLimitPartial
	p.respLimit = int64(cfg.ResponseBodyLimit)
	if p.respLimit <= 0 {
		p.respLimit = config.DefaultResponseBodyLimit
	}
	if p.respLimit > maxRequestBodyLimit {
		return p.errorf("response_body_limit %d exceeds %d", p.respLimit, maxRequestBodyLimit)
	}
	p.respCut = cfg.ResponseBodyLimitAction == config.BodyLimitPartial || p.mode == config.WAFModeDetect
	setup := *cfg
	for _, d := range []struct {
		f *int
		v int
	}{
		{&setup.ParanoiaLevel, config.DefaultParanoiaLevel},
		{&setup.AnomalyThreshold, config.DefaultAnomalyThreshold},
		{&setup.MaxArguments, config.DefaultMaxArguments},
		{&setup.LimitStatus, config.DefaultLimitStatus},
	} {
		if *d.f <= 0 {
			*d.f = d.v
		}
	}
	if p.mode == config.WAFModeOff {
		setup.Mode = config.WAFModeDetect // validated as if it ran
	}

	for i, e := range cfg.Exclusions {
		for _, id := range e.RuleIDs {
			if protectedRule(id) {
				return p.errorf("exclusions[%d]: excluding rule %d would switch off the CRS blocking evaluation or the argument limit", i, id)
			}
		}
	}

	for i, g := range cfg.RampartRulesDisabled {
		if !slices.Contains(config.RampartRuleGroups, g) {
			return p.errorf("rampart_rules_disabled[%d]: %q is not a group of Rampart's rules", i, g)
		}
	}

	// The policy's own directives, each with its source and line.
	user := splitDirectives("rules", cfg.Rules)
	for _, f := range cfg.RuleFiles {
		b, err := os.ReadFile(resolve(baseDir, f))
		if err != nil {
			return p.errorf("rule_files: %v", err)
		}
		user = append(user, splitDirectives(f, string(b))...)
	}

	var early, late strings.Builder
	for i := range cfg.Exclusions {
		s, isLate := exclusionRule(i, &cfg.Exclusions[i])
		if isLate {
			late.WriteString(s)
		} else {
			early.WriteString(s)
		}
	}

	rules := make(map[int]struct{}, 1024)
	root := p.root
	if root == nil {
		root = crsFS()
	}
	// The CRS rules the prose group switches off, found by their tags as
	// they load, for the expansion action (shapes.go).
	exempt := new(exemptRules)
	set := exemptSetSeq.Add(1)
	exemptSets.Store(set, exempt)
	defer exemptSets.Delete(set)
	conf := func() coraza.WAFConfig {
		*exempt = exemptRules{}
		c := experimental.WAFConfigWithRuleObserver(coraza.NewWAFConfig().WithRootFS(root),
			func(r types.RuleMetadata) {
				rules[r.ID()] = struct{}{}
				exempt.observe(r.ID(), r.Tags())
			}).
			WithDirectives(engineSettings(&setup, p.bodyLimit, p.respLimit)).
			WithDirectives(rampartEarlyRules(cfg)).
			WithDirectives(crsSetup(&setup)).
			WithDirectives(early.String()).
			WithDirectives(rampartRules(cfg)).
			WithDirectives(crsWithUnscore(cfg, set))
		for _, d := range user {
			c = c.WithDirectives(d.text)
		}
		// Exclusions for every request change loaded rules, so they come
		// last; Coraza ignores ids it does not know, checked below.
		return c.WithDirectives(late.String())
	}
	w, err := coraza.NewWAF(conf())
	if err != nil {
		return p.compileError(conf, user, err)
	}
	for i, e := range cfg.Exclusions {
		for _, id := range e.RuleIDs {
			if _, ok := rules[id]; !ok {
				return p.errorf("exclusions[%d]: rule %d is not loaded", i, id)
			}
		}
	}
	ww, ok := w.(experimental.WAFWithOptions)
	if !ok {
		return errors.New("waf: coraza engine lacks NewTransactionWithOptions")
	}
	p.waf, p.rules = ww, rules
	_, p.scanMarkup = rules[9500202]
	return nil
}

// compileError names the directive of the policy's own rules that failed.
// Coraza's parser does not report it, so the engine is compiled again with
// a logger that records each directive parsed: the last one failed.
func (p *Policy) compileError(conf func() coraza.WAFConfig, user []directive, cause error) error {
	var parsed []string
	_, _ = coraza.NewWAF(conf().WithDebugLogger(parseLog{lines: &parsed}))
	if len(parsed) > 0 {
		last := parsed[len(parsed)-1]
		// The last directives parsed are a prefix of user: find the longest
		// prefix of user that ends the parsed list and ends with last.
		for k := len(user) - 1; k >= 0; k-- {
			if user[k].text != last || k+1 > len(parsed) {
				continue
			}
			match := true
			for j := 0; j <= k; j++ {
				if parsed[len(parsed)-1-k+j] != user[j].text {
					match = false
					break
				}
			}
			if match {
				d := user[k]
				if d.src == "rules" && p.cfg.RulesLine() > 0 {
					// Inline rules: the config file's line too.
					return p.errorf("rules line %d (config line %d): %v", d.line, p.cfg.RulesLine()+d.line-1, unwrapCoraza(cause))
				}
				return p.errorf("%s line %d: %v", d.src, d.line, unwrapCoraza(cause))
			}
		}
	}
	return p.errorf("%v", unwrapCoraza(cause))
}

// unwrapCoraza drops Coraza's generic prefixes from a compile error.
func unwrapCoraza(err error) string {
	s := err.Error()
	for _, pre := range []string{"invalid WAF config from string: ", "invalid WAF config from file: "} {
		s = strings.TrimPrefix(s, pre)
	}
	return s
}

func (p *Policy) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: waf.%s: %s", ErrInvalidPolicy, p.name, fmt.Sprintf(format, args...))
}

// resolve returns path relative to base unless it is absolute or a
// standard stream.
func resolve(base, path string) string {
	if base == "" || filepath.IsAbs(path) || path == "stdout" || path == "stderr" {
		return path
	}
	return filepath.Join(base, path)
}
