package testlog

import (
	"log/slog"
	"sync"
	"testing"
)

func TestBufferConcurrentWrites(t *testing.T) {
	b, log := New(slog.LevelInfo)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				log.Info("probe", "n", j)
			}
		}()
	}
	wg.Wait()
	log.Debug("below the level")
	if got := b.Count("msg=probe"); got != 400 {
		t.Errorf("Count: got %d; want 400", got)
	}
	if got := len(b.Lines()); got != 400 {
		t.Errorf("Lines: got %d; want 400", got)
	}
	if got := b.Count("below the level"); got != 0 {
		t.Errorf("debug line written: got %d; want 0", got)
	}
}
