package proxy

import (
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/waf"
)

// buildWAF compiles cfg's WAF policies, keeping every compiled policy of
// old whose settings are unchanged: a CRS compile costs CPU, and a reload
// that touches only an upstream should not pay it.
func buildWAF(cfg *config.Config, old *snapshot, logs *waf.AuditLogs, m *metrics.Metrics, budget *waf.Budget, log *slog.Logger) (map[string]*waf.Policy, error) {
	out := make(map[string]*waf.Policy, len(cfg.WAF))
	base := ""
	if cfg.File != "" {
		base = filepath.Dir(cfg.File)
	}
	for _, name := range sortedKeys(cfg.WAF) {
		pc := cfg.WAF[name]
		if old != nil {
			if p, ok := old.waf[name]; ok && old.cfg.WAF[name].Equal(*pc) && sameBase(old.cfg, cfg) {
				out[name] = p
				continue
			}
		}
		wm := m.WAF(name)
		p, err := waf.Compile(name, pc, waf.Options{BaseDir: base, AuditLogs: logs, Hooks: wafHooks(wm, log), Budget: budget})
		if err != nil {
			closeNew(out, old)
			return nil, err
		}
		out[name] = p
	}
	return out, nil
}

func sameBase(a, b *config.Config) bool { return filepath.Dir(a.File) == filepath.Dir(b.File) }

// closeNew closes the policies of built that old does not share, after a
// failed build.
func closeNew(built map[string]*waf.Policy, old *snapshot) {
	for name, p := range built {
		if old == nil || old.waf[name] != p {
			p.Close()
		}
	}
}

// retireWAF closes the policies of old that next no longer uses.
func retireWAF(old, next *snapshot) {
	for name, p := range old.waf {
		if next == nil || next.waf[name] != p {
			p.Close()
		}
	}
}

// inspectHook, when set (by a test's init, before any policy is built),
// sees every inspected request's transaction (waf.Hooks.Request).
var inspectHook func(policy string, tx types.Transaction)

// wafHooks count a policy's verdicts and rule matches, and log bodies
// that the WAF's buffer budget could not hold.
func wafHooks(wm *metrics.WAFMetrics, log *slog.Logger) waf.Hooks {
	overBudget := func(policy string) {
		wm.OverBudget()
		overBudgetLog.note(log, policy)
	}
	if wm == nil {
		return waf.Hooks{OverBudget: overBudget, Request: inspectHook}
	}
	return waf.Hooks{
		OverBudget: overBudget,
		Request:    inspectHook,
		Inspected: func(_ string, a waf.Action) {
			wm.Inspected()
			switch a {
			case waf.ActionBlocked:
				wm.Blocked()
			case waf.ActionDetected:
				wm.Detected()
			}
		},
		RuleMatched: func(_ string, id int) { wm.RuleMatched(id) },
	}
}

// wafBufferLimit is cfg's waf_buffer_limit, its default when unset.
func wafBufferLimit(cfg *config.Config) int64 {
	if cfg.WAFBufferLimit <= 0 {
		return config.DefaultWAFBufferLimit
	}
	return int64(cfg.WAFBufferLimit)
}

// overBudgetLog writes a warning when bodies were refused or passed
// uninspected for lack of WAF buffer budget: at most one line every
// overBudgetEvery, with the count since the last line, so that a flood
// does not flood the log too. Each body is counted in
// rampart_waf_buffer_exhausted_total and has its audit event.
var overBudgetLog budgetLog

const overBudgetEvery = 10 * time.Second

type budgetLog struct {
	last  atomic.Int64 // unix nanoseconds of the last line
	count atomic.Int64 // bodies since the last line
}

func (b *budgetLog) note(log *slog.Logger, policy string) {
	n := b.count.Add(1)
	now := time.Now().UnixNano()
	last := b.last.Load()
	if now-last < int64(overBudgetEvery) || !b.last.CompareAndSwap(last, now) {
		return
	}
	b.count.Add(-n)
	if log != nil {
		log.Warn("WAF buffer budget spent: bodies refused (block mode) or passed uninspected (detect mode); raise waf_buffer_limit if this is not an attack",
			"policy", policy, "bodies", n)
	}
}
