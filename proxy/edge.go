package proxy

// The edge features (issues 21, 22 and 23) plug into the pipeline here.
// Each has its own file, which holds its route state, its per-request
// state, its build step and its pipeline steps:
//
//	ipaccess.go  allow/deny          route.access     x.admit
//	cors.go      CORS                route.cors       x.corsPreflight, x.corsResponse
//	auth.go      basic, forward, JWT route.auth       x.authenticate
//	edits.go     rewrites, headers   route.edits      x.editRequest, x.editResponse
//	mirror.go    mirroring           route.mirror     x.mirrorRequest
//	cache.go     response cache      route.cache      x.serveCached, x.cacheResponse (policies: cache_build.go)
//	compress.go  compression         route.compress   x.compressResponse
//	trace.go     OpenTelemetry spans snapshot.tracing x.startTrace, x.traceX (spans of the WAF and each try)
//
// The order of a request's steps (docs/access.md, docs/edge.md,
// docs/cache.md): the PROXY protocol (at accept), routing, allow/deny,
// rate limit, CORS preflight, auth, the WAF (which inspects the request as
// the client sent it), rewrites, the cache, mirroring, the upstream, with
// the request header edits applied last, as the request is prepared for
// the target (prepareRequest); on the way back: WAF response inspection,
// cache store (the target's answer, before the edits; a hit gets them as a
// miss does), response header edits and CORS headers, compression.

import "github.com/rampart-proxy/rampart/config"

// edgeBuild is what a feature's build step reads: the config being built,
// the running snapshot (nil on the first build) whose resources it may
// reuse, and the snapshot under construction.
type edgeBuild struct {
	cfg    *config.Config
	old    *snapshot
	snap   *snapshot
	dryRun bool // validate only: open nothing that outlives the build
}

// buildEdges runs every feature's build step for each route of snap.
func (s *Server) buildEdges(cfg *config.Config, old, snap *snapshot, dryRun bool) error {
	e := &edgeBuild{cfg: cfg, old: old, snap: snap, dryRun: dryRun}
	for _, name := range sortedKeys(snap.listeners) {
		for _, r := range snap.listeners[name].routes {
			if err := s.buildAccess(e, r); err != nil { // ipaccess.go
				return err
			}

			if err := s.buildCORS(e, r); err != nil { // cors.go
				return err
			}

			if err := s.buildAuth(e, r); err != nil { // auth.go
				return err
			}

			if err := s.buildEdits(e, r); err != nil { // edits.go
				return err
			}

			if err := s.buildMirror(e, r); err != nil { // mirror.go
				return err
			}

			if err := s.buildCache(e, r); err != nil { // cache.go
				return err
			}

			if err := s.buildCompress(e, r); err != nil { // compress.go
				return err
			}
		}
	}
	return nil
}
