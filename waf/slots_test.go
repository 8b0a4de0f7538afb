package waf

import (
	"io"
	"net/netip"
	"testing"
	"time"
)

// TestSlowBodyHoldsNoEngineSlot: inspections whose streamed body is still
// arriving (more of them than there are engine slots) do not keep another
// inspection from running; and once their bodies arrive, they finish.
func TestSlowBodyHoldsNoEngineSlot(t *testing.T) {
	p := blockPolicy(t)
	info := Request{ID: []byte("slots"), ClientIP: netip.MustParseAddr("192.0.2.7")}
	slow := cap(engineSlots) + 2
	writers := make([]*io.PipeWriter, slow)
	done := make(chan *Verdict, slow)
	reading := make(chan struct{}, slow)
	for i := range slow {
		pr, pw := io.Pipe()
		writers[i] = pw
		ctx := newCtx(t, "POST /upload HTTP/1.1\nHost: example.com\nContent-Type: application/x-www-form-urlencoded\n\n")
		ctx.Request.SetBodyStream(&signalReader{r: pr, reading: reading}, -1)
		go func() { done <- p.Inspect(ctx, info) }()
	}
	// Wait until as many inspections as there are slots read their bodies:
	// were they holding their slots, none would be left.
	for range cap(engineSlots) {
		select {
		case <-reading:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow inspections did not start reading their bodies")
		}
	}
	quick := make(chan *Verdict, 1)
	go func() {
		quick <- p.Inspect(newCtx(t, "GET /search?q=shoes HTTP/1.1\nHost: example.com\n\n"), info)
	}()
	select {
	case v := <-quick:
		if v.Blocked() {
			t.Errorf("a benign GET was blocked: %d", v.Status)
		}
		v.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("an inspection waited behind inspections reading slow bodies")
	}
	for _, w := range writers {
		go func() {
			_, _ = io.WriteString(w, "a=1&b=2")
			_ = w.Close()
		}()
	}
	for range slow {
		select {
		case v := <-done:
			if v.Blocked() {
				t.Errorf("a benign POST was blocked: %d", v.Status)
			}
			v.Close()
		case <-time.After(10 * time.Second):
			t.Fatal("an inspection did not finish after its body arrived")
		}
	}
	if n := len(engineSlots); n != 0 {
		t.Errorf("%d engine slots still held", n)
	}
	if n := p.OpenTransactions(); n != 0 {
		t.Errorf("%d transactions open", n)
	}
}

// signalReader reports its first Read on reading.
type signalReader struct {
	r       io.Reader
	reading chan<- struct{}
	once    bool
}

func (s *signalReader) Read(p []byte) (int, error) {
	if !s.once {
		s.once = true
		s.reading <- struct{}{}
	}
	return s.r.Read(p)
}
