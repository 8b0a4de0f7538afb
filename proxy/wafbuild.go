package proxy

import (
	"path/filepath"
	"reflect"

	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/waf"
)

// buildWAF compiles cfg's WAF policies, keeping every compiled policy of
// old whose settings are unchanged: a CRS compile costs CPU, and a reload
// that touches only an upstream should not pay it.
func buildWAF(cfg *config.Config, old *snapshot, logs *waf.AuditLogs, m *metrics.Metrics) (map[string]*waf.Policy, error) {
	out := make(map[string]*waf.Policy, len(cfg.WAF))
	base := ""
	if cfg.File != "" {
		base = filepath.Dir(cfg.File)
	}
	for _, name := range sortedKeys(cfg.WAF) {
		pc := cfg.WAF[name]
		if old != nil {
			if p, ok := old.waf[name]; ok && reflect.DeepEqual(old.cfg.WAF[name], pc) && sameBase(old.cfg, cfg) {
				out[name] = p
				continue
			}
		}
		wm := m.WAF(name)
		p, err := waf.Compile(name, pc, waf.Options{BaseDir: base, AuditLogs: logs, Hooks: wafHooks(wm)})
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

// wafHooks count a policy's verdicts and rule matches.
func wafHooks(wm *metrics.WAFMetrics) waf.Hooks {
	if wm == nil {
		return waf.Hooks{Request: inspectHook}
	}
	return waf.Hooks{
		Request: inspectHook,
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
