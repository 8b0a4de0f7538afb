package tls

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/acme/autocert"
)

// prepareCacheDir creates dir with mode 0700, or tightens an existing one
// to 0700 (it holds the account's and the certificates' private keys), and
// checks that it is writable, so a bad cache_dir fails the build, not the
// first order. Files in it are 0600: autocert.DirCache writes each through
// os.CreateTemp (0600) and a rename.
func prepareCacheDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("%s is mode %v, and making it 0700 failed: %w", dir, perm, err)
		}
		log.Warn("tls: ACME cache directory was readable by others; made it 0700", "dir", dir, "was", fs.FileMode(perm).String())
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("%s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// http01Suffix ends autocert's cache key of an HTTP-01 key authorization
// ("TOKEN+http-01"). Only the challenge lookup depends on this name; a test
// pins it.
const http01Suffix = "+http-01"

// tokenCache is the autocert.Cache of an issuer: next, plus the HTTP-01 key
// authorizations of this process's pending orders in memory, for
// HTTPChallenge. autocert keeps its own copy, but offers it only through a
// net/http handler.
type tokenCache struct {
	next   autocert.Cache
	shared bool // next is shared with other instances: their tokens are found there
	// stored, when set, is told the key of each certificate put (not of
	// tokens or the account key).
	stored func(key string)

	mu     sync.RWMutex      // guards http01
	http01 map[string][]byte // token -> key authorization
}

func (c *tokenCache) Get(ctx context.Context, key string) ([]byte, error) {
	return c.next.Get(ctx, key)
}

func (c *tokenCache) Put(ctx context.Context, key string, data []byte) error {
	if token, ok := strings.CutSuffix(key, http01Suffix); ok {
		c.mu.Lock()
		if c.http01 == nil {
			c.http01 = make(map[string][]byte)
		}
		c.http01[token] = data
		c.mu.Unlock()
		return c.next.Put(ctx, key, data)
	}
	err := c.next.Put(ctx, key, data)
	if c.stored != nil && !strings.HasPrefix(key, "acme_account") {
		c.stored(key)
	}
	return err
}

func (c *tokenCache) Delete(ctx context.Context, key string) error {
	if token, ok := strings.CutSuffix(key, http01Suffix); ok {
		c.mu.Lock()
		delete(c.http01, token)
		c.mu.Unlock()
	}
	return c.next.Delete(ctx, key)
}

// keyAuthorization returns the HTTP-01 answer for token: this process's, or
// another instance's from a shared cache.
func (c *tokenCache) keyAuthorization(token []byte) ([]byte, bool) {
	c.mu.RLock()
	v, ok := c.http01[string(token)]
	c.mu.RUnlock()
	if ok || !c.shared {
		return v, ok
	}
	ctx, cancel := context.WithTimeout(context.Background(), challengeLookup)
	defer cancel()
	v, err := c.next.Get(ctx, string(token)+http01Suffix)
	return v, err == nil
}
