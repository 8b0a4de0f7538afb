package waf

import (
	"sync"
	"testing"
)

// TestRampartRulesConcurrent inspects attacks and benign requests from
// several goroutines at once with one policy (run with -race): the
// expansion and prose actions share the policy's state.
func TestRampartRulesConcurrent(t *testing.T) {
	on := rrPolicy(t, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				raw := rrCRSFalsePositives[(g+i)%len(rrCRSFalsePositives)].raw
				ctx := newCtx(t, raw)
				v, _ := inspectOpen(ctx, on)
				if v.Blocked() {
					t.Errorf("benign shape blocked: status %d", v.Status)
				}
				v.Close()
				ctx = newCtx(t, rrAttacks[(g+i)%len(rrAttacks)].raw)
				v, _ = inspectOpen(ctx, on)
				v.Close()
			}
		}()
	}
	wg.Wait()
}
