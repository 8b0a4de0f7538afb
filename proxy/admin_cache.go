package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// cachePurger is the backend's ability to purge response caches (the
// Server has it; a backend without it answers 501).
type cachePurger interface {
	PurgeCache(ctx context.Context, name, rawURL, prefix string) (int, error)
}

// purgeRequest is the body of POST /api/v1/cache/purge: exactly one of
// URL (that answer and its Vary variants), Prefix (every answer whose URL
// starts with it) and All. Cache names the policy; empty: every policy.
type purgeRequest struct {
	Cache  string `json:"cache"`
	URL    string `json:"url"`
	Prefix string `json:"prefix"`
	All    bool   `json:"all"`
}

// purgeTimeout bounds one purge (a prefix purge of a Redis store scans).
const purgeTimeout = 30 * time.Second

// purgeCache answers 200 {"purged": N}, 400 for a malformed request, 404
// for an unknown policy, 502 when a shared store failed.
func (a *adminServer) purgeCache(w http.ResponseWriter, r *http.Request) {
	p, ok := a.b.(cachePurger)
	if !ok {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "no response cache"})
		return
	}
	var req purgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON body: " + err.Error()})
		return
	}
	n := 0
	if req.URL != "" {
		n++
	}
	if req.Prefix != "" {
		n++
	}
	if req.All {
		n++
	}
	if n != 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `give exactly one of "url", "prefix" and "all": true`})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), purgeTimeout)
	defer cancel()
	purged, err := p.PurgeCache(ctx, req.Cache, req.URL, req.Prefix)
	switch {
	case errors.Is(err, errNoCache):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case errors.Is(err, errBadPurge):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case err != nil:
		a.log.Warn("cache purge failed", "cache", req.Cache, "error", err.Error())
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "purged": purged})
	default:
		a.log.Info("cache purged", "cache", req.Cache, "url", req.URL, "prefix", req.Prefix, "all", req.All, "purged", purged)
		writeJSON(w, http.StatusOK, map[string]int{"purged": purged})
	}
}
