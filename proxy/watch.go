package proxy

import (
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce gathers the several events of one save (an editor's write
// then rename, a Kubernetes ConfigMap's symlink swap) into one reload.
const watchDebounce = 250 * time.Millisecond

// WatchConfig reloads the config file whenever it changes, until Shutdown.
// It watches the file's directory rather than the file: editors replace the
// file by renaming another over it, and a Kubernetes ConfigMap swaps a
// "..data" symlink, and neither is seen by a watch on the old file. A change
// that leaves the file's content as it was does nothing.
func (s *Server) WatchConfig() error {
	path := s.snap.Load().cfg.File
	if path == "" {
		return ErrNoConfigFile
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		_ = w.Close()
		return err
	}
	go s.watch(w, path)
	return nil
}

func (s *Server) watch(w *fsnotify.Watcher, path string) {
	defer w.Close()
	last := fileSum(path)
	base := filepath.Base(path)
	var timer *time.Timer
	fire := make(chan struct{}, 1)
	for {
		select {
		case <-s.stop:
			return
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.log.Warn("watching the config file", "error", err.Error())
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			// Only the file itself, or the "..data" link a Kubernetes
			// ConfigMap swaps (and which the file links through), matter:
			// other files written beside it must not keep postponing the
			// reload.
			if name := filepath.Base(ev.Name); name != base && name != "..data" {
				continue
			}
			if timer == nil {
				timer = time.AfterFunc(watchDebounce, func() {
					select {
					case fire <- struct{}{}:
					default:
					}
				})
			} else {
				timer.Reset(watchDebounce)
			}
		case <-fire:
			sum := fileSum(path)
			if sum == nil || bytes.Equal(sum, last) {
				continue // gone for a moment (mid-rename), or unchanged
			}
			last = sum
			s.log.Info("config file changed; reloading", "file", path)
			_, _ = s.ReloadFromFile()
		}
	}
}

// fileSum hashes the file's content (following symlinks), nil when it
// cannot be read.
func fileSum(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	return sum[:]
}
