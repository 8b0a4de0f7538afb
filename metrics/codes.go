package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// codeSlots is the size of a handle's status code cache: a power of two
// comfortably above the number of distinct codes one route or target
// answers in practice (a dozen or so). Beyond it, recording still works
// but looks the child up in the vector, allocating.
const codeSlots = 32

// codeCounter is one cached child of a vector with a "code" label.
type codeCounter struct {
	code int
	c    prometheus.Counter
}

// codeTable caches the children of a counter vector whose last label is
// the status code, for fixed values of the other labels. It is an open
// addressed hash table that only grows: slots are filled once with
// compare-and-swap and never change, so a lookup is a few atomic loads.
type codeTable struct {
	vec    *prometheus.CounterVec
	labels []string          // the values of every label but the code
	match  prometheus.Labels // the same, named, for retire
	slots  [codeSlots]atomic.Pointer[codeCounter]

	mu      sync.Mutex // guards retired against the vector lookups of resolve
	retired bool       // the series were deleted; resolve must not recreate them
}

// codeLabel maps a status code to its label value. Codes outside 100..599
// are recorded as "0" ("no response"), so a misbehaving upstream cannot
// create unbounded series.
func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "0"
	}
	return codeStrings[code-100]
}

// codeStrings holds "100" to "599", so resolving a child formats nothing.
var codeStrings = func() (s [500]string) {
	for i := range s {
		s[i] = strconv.Itoa(100 + i)
	}
	return s
}()

// counter returns the child for code, resolving and caching it on first
// use.
func (t *codeTable) counter(code int) prometheus.Counter {
	if code < 100 || code > 599 {
		code = 0
	}
	i := uint(code) % codeSlots
	for range codeSlots {
		p := t.slots[i].Load()
		if p == nil {
			n := &codeCounter{code: code, c: t.resolve(code)}
			if t.slots[i].CompareAndSwap(nil, n) {
				return n.c
			}
			p = t.slots[i].Load()
		}
		if p.code == code {
			return p.c
		}
		i = (i + 1) % codeSlots
	}
	return t.resolve(code) // every slot holds another code
}

// resolve looks up the vector's child for code. Once the table is retired
// it returns a detached counter, so that a request still in flight on a
// dropped route cannot bring its series back.
func (t *codeTable) resolve(code int) prometheus.Counter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.retired {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "retired", Help: "retired"})
	}
	lv := make([]string, len(t.labels)+1)
	copy(lv, t.labels)
	lv[len(t.labels)] = codeLabel(code)
	return t.vec.WithLabelValues(lv...)
}

// retire deletes the table's series from the vector; later resolves
// return detached counters.
func (t *codeTable) retire() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.retired = true
	t.vec.DeletePartialMatch(t.match)
}

// init points t at vec's children whose other labels are
// names[i] = values[i].
func (t *codeTable) init(vec *prometheus.CounterVec, names, values []string) {
	t.vec, t.labels = vec, values
	t.match = make(prometheus.Labels, len(names))
	for i, n := range names {
		t.match[n] = values[i]
	}
}
