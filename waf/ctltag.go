package waf

import (
	"errors"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"github.com/corazawaf/coraza/v3/experimental/plugins"
	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types/variables"
)

// The CRS's rule 941010 runs on every request whose path is plain and
// does ctl:ruleRemoveTargetByTag=xss-perf-disable;REQUEST_FILENAME: the
// XSS rules need not look at such a path. Coraza carries that out by
// comparing the tag with every tag of every loaded rule, on each request:
// 4.6% of the CPU of a benign GET. The rules a tag names do not change
// once the policy is compiled, so the embedded CRS's ctl actions of that
// form (a tag and a whole collection) are rewritten to the action
// rampart_remove_target_by_tag, which finds the rules once per compiled
// engine and then removes the target from each by id, as the ctl would.

// removeByTagAction is the action the CRS's ctl:ruleRemoveTargetByTag
// actions are rewritten to.
const removeByTagAction = "rampart_remove_target_by_tag"

func init() {
	plugins.RegisterAction(removeByTagAction, func() plugintypes.Action { return &removeByTag{} })
}

// removeByTag removes a collection from the targets of the rules with a
// tag, for the rest of the transaction.
type removeByTag struct {
	tag      string
	variable variables.RuleVariable
	ids      sync.Map // engine (*corazawaf.WAF) -> []int, the ids of its rules with tag
}

// targetRemover is what removeByTag needs of a *corazawaf.Transaction.
type targetRemover interface {
	RemoveRuleTargetByID(id int, variable variables.RuleVariable, key string, keyRx *regexp.Regexp)
}

func (a *removeByTag) Init(_ plugintypes.RuleMetadata, data string) error {
	tag, col, ok := strings.Cut(data, ";")
	if !ok || tag == "" || strings.Contains(col, ":") {
		return errors.New(removeByTagAction + ": want TAG;COLLECTION")
	}
	v, err := variables.Parse(strings.TrimSpace(col))
	if err != nil {
		return errors.New(removeByTagAction + ": " + err.Error())
	}
	a.tag, a.variable = tag, v
	return nil
}

func (a *removeByTag) Evaluate(_ plugintypes.RuleMetadata, tx plugintypes.TransactionState) {
	r, ok := tx.(targetRemover)
	if !ok {
		return
	}
	for _, id := range a.ruleIDs(tx) {
		r.RemoveRuleTargetByID(id, a.variable, "", nil)
	}
}

func (a *removeByTag) Type() plugintypes.ActionType { return plugintypes.ActionTypeNondisruptive }

// ruleIDs returns the ids of the engine's rules that have the tag, as
// Coraza's ctl finds them (its top-level rules), found on the first call
// for each engine. Coraza does not export a transaction's engine as an
// interface, so its exported fields are read with reflect; nil when they
// are not laid out as expected.
func (a *removeByTag) ruleIDs(tx plugintypes.TransactionState) []int {
	v, ok := pointedStruct(tx)
	if !ok {
		return nil
	}
	engine := v.FieldByName("WAF")
	if !engine.IsValid() || engine.Kind() != reflect.Pointer || engine.IsNil() {
		return nil
	}
	key := engine.Interface()
	if ids, ok := a.ids.Load(key); ok {
		return ids.([]int)
	}
	group := engine.Elem().FieldByName("Rules")
	if !group.IsValid() || !group.CanAddr() {
		return nil
	}
	get := group.Addr().MethodByName("GetRules")
	if !get.IsValid() || get.Type().NumIn() != 0 || get.Type().NumOut() != 1 {
		return nil
	}
	rules := get.Call(nil)[0]
	if rules.Kind() != reflect.Slice {
		return nil
	}
	ids := []int{}
	for i := range rules.Len() {
		r := rules.Index(i)
		id, tags := r.FieldByName("ID_"), r.FieldByName("Tags_")
		if id.Kind() != reflect.Int || tags.Kind() != reflect.Slice {
			return nil
		}
		for j := range tags.Len() {
			if tags.Index(j).String() == a.tag {
				ids = append(ids, int(id.Int()))
				break
			}
		}
	}
	a.ids.Store(key, ids)
	return ids
}

// tagCtl matches a ctl:ruleRemoveTargetByTag action whose target is a
// whole collection; rewriteTagCtl leaves other forms to Coraza.
var tagCtl = regexp.MustCompile(`ctl:ruleRemoveTargetByTag=([^;,'"\s\\]+);([A-Za-z_]+)([,"\\\s]|$)`)

func rewriteTagCtl(src []byte) []byte {
	return tagCtl.ReplaceAll(src, []byte(removeByTagAction+":${1};${2}${3}"))
}
