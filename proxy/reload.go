package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"time"

	"github.com/rampart-proxy/rampart/config"
)

// ErrNoConfigFile is returned by ReloadFromFile when the server was built
// from a config that did not come from a file.
var ErrNoConfigFile = errors.New("proxy: no config file to reload from")

// ReloadFromFile reads, validates and applies the config file the server
// was started with. changed is false when the file holds the config already
// running. On any error nothing changes: the running config keeps serving.
func (s *Server) ReloadFromFile() (changed bool, err error) {
	path := s.snap.Load().cfg.File
	if path == "" {
		return false, ErrNoConfigFile
	}
	cfg, err := config.Load(path)
	if err != nil {
		s.reloaded(false, err)
		return false, err
	}
	return s.Reload(cfg)
}

// Reload applies cfg (validated) in place of the running config:
//
//  1. build everything new off the request path: rate limiters (kept when
//     their policy is unchanged, with their counts), upstream pools (target
//     state and pooled connections carried over by address), routers;
//  2. bind the listeners that are new or moved, before anything changes, so a
//     port in use fails the reload as a whole;
//  3. swap the snapshot: from the next request on, every request sees the
//     new config, and no request ever sees a mix of both;
//  4. retire what the old config had alone: listeners removed or moved are
//     drained (their open connections, WebSocket tunnels included, are served
//     to the end), health checkers restarted, state of removed targets
//     forgotten.
//
// An established client connection is never closed by a reload.
func (s *Server) Reload(cfg *config.Config) (changed bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.snap.Load()
	if reflect.DeepEqual(old.cfg, cfg) && !old.authFilesChanged() { // auth.go: a users_file is read on each reload
		s.log.Info("configuration reload: unchanged; nothing to do")
		s.reloaded(true, nil)
		return false, nil
	}
	a, err := s.assemble(cfg, old, false)
	if err != nil {
		s.reloaded(false, err)
		return false, err
	}
	snap, client := a.snap, a.redis
	added, moved, removed, err := s.bindListeners(cfg)
	if err != nil {
		s.discard(a, old)
		s.reloaded(false, err)
		return false, err
	}

	s.snap.Store(snap)
	s.wafBuffer.SetLimit(wafBufferLimit(cfg))

	s.mu.Lock()
	for name, l := range added {
		s.listeners[name] = l
		l.serve(s.metrics.Listener(name))
	}
	for name := range removed {
		delete(s.listeners, name)
	}
	for name, lc := range cfg.Listeners {
		if l, ok := s.listeners[name]; ok && added[name] == nil {
			l.configure(lc)
		}
	}
	s.mu.Unlock()
	for _, l := range moved {
		go s.drain(l)
	}
	for _, l := range removed {
		go s.drain(l)
	}
	// Requests that began under the old snapshot may still use its TLS
	// managers, WAF policies and access log for a while.
	retire(old, snap)
	s.restartCheckers(old)
	s.forgetTargets(snap)
	retainMetrics(s.metrics, snap)
	s.recordCertificates()
	s.reconfigureAdmin(old.cfg, cfg)
	if client != s.redis {
		prev := s.redis
		s.redis = client
		if prev != nil {
			_ = prev.Close() // its limiters are no longer referenced by the new snapshot
		}
	}
	s.log.Info("configuration reloaded", "listeners", len(cfg.Listeners), "upstreams", len(cfg.Upstreams), "routes", len(cfg.Routes))
	for _, w := range cfg.Warnings() {
		s.log.Warn("configuration: " + w)
	}
	s.reloaded(true, nil)
	return true, nil
}

// reconfigureAdmin applies a change of the admin section: a new token at
// once, a new address by binding it and closing the old one. Adding or
// removing the admin section itself takes a restart (the metrics registry
// lives as long as the process).
func (s *Server) reconfigureAdmin(old, cfg *config.Config) {
	if s.admin == nil || cfg.Admin == nil {
		if (old.Admin == nil) != (cfg.Admin == nil) {
			s.log.Warn("adding or removing the admin section takes effect at the next restart")
		}
		return
	}
	if cfg.Admin.Address == old.Admin.Address {
		if err := s.admin.SetConfig(cfg.Admin); err != nil {
			s.log.Error("admin listener: the new admin section is refused; keeping the old one", "error", err.Error())
		}
		return
	}
	a, err := newAdminServer(cfg.Admin, s, s.registry, s.log)
	if err != nil {
		s.log.Error("admin listener: the new address cannot be bound; keeping the old one", "error", err.Error())
		if err := s.admin.SetConfig(&config.Admin{Address: old.Admin.Address, Token: cfg.Admin.Token,
			Hosts: cfg.Admin.Hosts, AllowUnauthenticated: cfg.Admin.AllowUnauthenticated}); err != nil {
			s.log.Error("admin listener: the new admin section is refused; keeping the old one", "error", err.Error())
		}
		return
	}
	prev := s.admin
	s.admin = a
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = prev.Shutdown(ctx)
	}()
}

// reloaded records a reload's outcome (a metrics hook) and logs failures
// once.
func (s *Server) reloaded(ok bool, err error) {
	if err != nil {
		s.log.Error("configuration reload failed; the running configuration keeps serving", "error", err.Error())
	}
	if ok {
		s.metrics.ReloadSucceeded()
	} else {
		s.metrics.ReloadFailed()
		retainMetrics(s.metrics, s.snap.Load()) // a failed build may have made handles
	}
	if s.onReload != nil {
		s.onReload(ok)
	}
}

// bindListeners opens the listeners cfg adds or moves to another address.
// On error, whatever it opened is closed and nothing else has changed.
func (s *Server) bindListeners(cfg *config.Config) (added map[string]*listener, moved, removed map[string]*listener, err error) {
	added, moved, removed = map[string]*listener{}, map[string]*listener{}, map[string]*listener{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, l := range s.listeners {
		lc, ok := cfg.Listeners[name]
		switch {
		case !ok:
			removed[name] = l
		case lc.Address != l.addr:
			moved[name] = l
		}
	}
	for _, name := range sortedKeys(cfg.Listeners) {
		if _, ok := s.listeners[name]; ok && moved[name] == nil {
			continue
		}
		lc := cfg.Listeners[name]
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			for _, l := range added {
				_ = l.ln.Close()
			}
			return nil, nil, nil, fmt.Errorf("listener %q: %w", name, err)
		}
		l := s.newListener(name, lc, ln)
		added[name] = l
		s.log.Info("listening", "listener", name, "address", ln.Addr().String())
	}
	return added, moved, removed, nil
}

// drain stops a listener that a reload removed or moved: it accepts no more
// connections, and its open ones are served to their end (its HTTP/2
// connections get a GOAWAY and finish the streams they have).
func (s *Server) drain(l *listener) {
	s.log.Info("draining listener", "listener", l.name, "address", l.ln.Addr().String())
	_ = l.shutdown(context.Background())
}

// restartCheckers replaces the health checkers by those of the running
// snapshot. Targets whose pool no longer has active checks are marked
// healthy again: nothing would ever revive them otherwise.
func (s *Server) restartCheckers(old *snapshot) {
	for _, c := range s.checkers {
		c.Stop()
	}
	s.checkers = nil
	snap := s.snap.Load()
	for name, p := range old.pools {
		if p.cfg.HealthCheck == nil {
			continue
		}
		if np, ok := snap.pools[name]; ok && np.cfg.HealthCheck != nil {
			continue
		}
		for _, t := range p.balancer.Targets {
			t.State.SetHealthy(true)
		}
	}
	if err := s.startCheckers(); err != nil {
		s.log.Error("health checks", "error", err.Error())
	}
}

// forgetTargets drops the live state of targets no pool has any more.
func (s *Server) forgetTargets(snap *snapshot) {
	keep := make(map[string]bool)
	for _, p := range snap.pools {
		for _, n := range p.targetNames {
			keep[n] = true
		}
	}
	s.reg.Retain(keep)
}

// Ready reports whether the server is serving: started and not shutting
// down.
func (s *Server) Ready() bool {
	return s.ready.Load()
}
