package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rampart-proxy/rampart/config"
)

// adminBackend is what the admin listener asks of the running proxy. The
// Server implements it; tests use a fake.
type adminBackend interface {
	// RunningConfig returns the config now serving.
	RunningConfig() *config.Config
	// UpstreamStatus returns every upstream and the live state of its
	// targets.
	UpstreamStatus() []UpstreamStatus
	// ReloadFromFile reloads the config file now. changed is false when the
	// file equals the running config; err is not nil when the new config
	// was refused (the old one serves on).
	ReloadFromFile() (changed bool, err error)
	// Ready reports that the config is loaded and the listeners bound, and
	// that the process is not draining.
	Ready() bool
}

// UpstreamStatus is one upstream pool as GET /api/v1/upstreams shows it.
type UpstreamStatus struct {
	Name     string         `json:"name"`
	Balancer string         `json:"balancer"`
	Targets  []TargetStatus `json:"targets"`
}

// TargetStatus is one target's live state.
type TargetStatus struct {
	// Address is the target's dial address (host:port), the key of its
	// state across reloads.
	Address string `json:"address"`
	// URL is the target as written in the config.
	URL    string `json:"url,omitempty"`
	Weight int    `json:"weight,omitempty"`
	// Healthy is the active health check's verdict (true without one).
	Healthy bool `json:"healthy"`
	// Ejected reports a passive ejection in force now.
	Ejected bool `json:"ejected"`
	// Inflight counts requests sent and not yet answered.
	Inflight int64 `json:"inflight"`
	// Ejections counts passive ejections since the target appeared.
	Ejections uint64 `json:"ejections"`
}

// Bounds of the admin listener's connections. The admin API is not on the
// request path; these only keep a stuck client from holding it.
const (
	adminReadHeaderTimeout = 10 * time.Second
	adminReadTimeout       = 30 * time.Second
	adminIdleTimeout       = 60 * time.Second
	adminMaxHeaderBytes    = 16 << 10
)

// adminServer serves /healthz, /readyz, /metrics and /api/v1/... on its
// own listener with net/http.
type adminServer struct {
	b   adminBackend
	reg *prometheus.Registry // nil: /metrics answers 404
	log *slog.Logger

	// access is what a request must satisfy; a reload that keeps the
	// address replaces it (SetConfig).
	access atomic.Pointer[adminAccess]

	mux  *http.ServeMux
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// newAdminServer binds cfg.Address and serves the admin API on it until
// Shutdown; see SetConfig for cfg's other fields. reg is the registry
// /metrics exposes.
func newAdminServer(cfg *config.Admin, b adminBackend, reg *prometheus.Registry, log *slog.Logger) (*adminServer, error) {
	if cfg == nil || cfg.Address == "" {
		return nil, errors.New("proxy: admin: no address")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &adminServer{b: b, reg: reg, log: log.With("listener", "admin"), mux: http.NewServeMux(), done: make(chan struct{})}
	if err := a.SetConfig(cfg); err != nil {
		return nil, err
	}
	a.routes()
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("proxy: admin: %w", err)
	}
	a.ln = ln
	a.srv = &http.Server{
		Handler:           a,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		IdleTimeout:       adminIdleTimeout,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin listener stopped", "err", err)
		}
	}()
	return a, nil
}

// Addr returns the address the admin listener is bound to.
func (a *adminServer) Addr() string { return a.ln.Addr().String() }

// SetConfig applies cfg's token, Host names and opt-out (at start, and on
// a reload that keeps the address). It refuses, keeping what was in force,
// a config that validation refuses too: a non-loopback address without a
// token or allow_unauthenticated. The opt-out is logged as a warning each
// time it is applied.
func (a *adminServer) SetConfig(cfg *config.Admin) error {
	if cfg.Token == "" && !cfg.Loopback() && !cfg.AllowUnauthenticated {
		return fmt.Errorf("proxy: admin: %q is not a loopback address and no token is set", cfg.Address)
	}
	if cfg.Token == "" && !cfg.Loopback() {
		a.log.Warn("the admin API is UNAUTHENTICATED on a non-loopback address (admin.allow_unauthenticated: true): "+
			"anyone who reaches it can read the configuration and reload it; set admin.token",
			"address", cfg.Address)
	}
	a.access.Store(newAdminAccess(cfg))
	return nil
}

// Shutdown stops accepting, waits for the requests being served (bounded
// by ctx), and closes the listener.
func (a *adminServer) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	if err != nil {
		a.srv.Close()
	}
	select {
	case <-a.done:
	case <-ctx.Done():
	}
	return err
}

// routes registers the endpoints. The mux answers 404 to unknown paths and
// 405, with Allow, to a known path with another method.
func (a *adminServer) routes() {
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	a.mux.HandleFunc("GET /readyz", a.readyz)
	if a.reg != nil {
		a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
			ErrorLog:      slog.NewLogLogger(a.log.Handler(), slog.LevelError),
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	a.mux.HandleFunc("GET /api/v1/config", a.config)
	a.mux.HandleFunc("GET /api/v1/upstreams", a.upstreams)
	a.mux.HandleFunc("POST /api/v1/reload", a.reload)
	a.mux.HandleFunc("POST /api/v1/cache/purge", a.purgeCache) // admin_cache.go
}

// ServeHTTP applies the checks of adminAccess, then hands over to the mux.
// Only the probes are exempt: a kubelet sends no token, and a health
// checker may send any Host; they answer "ok" or "ready" and nothing else.
// Everything else, unknown paths included, goes through every check, so an
// unauthenticated client learns nothing of the API.
func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
		a.mux.ServeHTTP(w, r)
		return
	}
	acc := a.access.Load()
	if !acc.hostAllowed(r.Host) {
		a.log.Debug("admin request refused: Host not allowed", "host", r.Host, "remote", r.RemoteAddr)
		writeText(w, http.StatusForbidden, "host not allowed\n")
		return
	}
	if err := adminCrossOrigin.Check(r); err != nil {
		a.log.Debug("admin request refused: cross-origin", "error", err.Error(), "remote", r.RemoteAddr)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
		return
	}
	if !acc.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	if acc.token == nil && !safeMethod(r.Method) && !jsonContent(r) && a.handles(r) {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{
			"error": "a state-changing admin request needs Content-Type: application/json or a bearer token " +
				"(a cross-site form can send neither)",
		})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// handles reports whether the mux has an endpoint for r's method and path
// (rather than a 404 or 405, which change nothing).
func (a *adminServer) handles(r *http.Request) bool {
	_, pattern := a.mux.Handler(r)
	return pattern != ""
}

func (a *adminServer) readyz(w http.ResponseWriter, _ *http.Request) {
	if a.b.Ready() {
		writeText(w, http.StatusOK, "ready")
		return
	}
	writeText(w, http.StatusServiceUnavailable, "not ready")
}

func (a *adminServer) config(w http.ResponseWriter, _ *http.Request) {
	cfg := a.b.RunningConfig()
	if cfg == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no config loaded"})
		return
	}
	writeJSON(w, http.StatusOK, redactConfig(cfg))
}

func (a *adminServer) upstreams(w http.ResponseWriter, _ *http.Request) {
	ups := a.b.UpstreamStatus()
	if ups == nil {
		ups = []UpstreamStatus{}
	}
	ups = slices.Clone(ups) // the backend's; the URLs are redacted in a copy
	for i := range ups {
		ups[i].Targets = slices.Clone(ups[i].Targets)
		for j := range ups[i].Targets {
			ups[i].Targets[j].URL = redactUserinfo(ups[i].Targets[j].URL)
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Upstreams []UpstreamStatus `json:"upstreams"`
	}{ups})
}

// reloadResult is the answer of POST /api/v1/reload.
type reloadResult struct {
	Changed bool `json:"changed"`
	// Error is the whole error; Errors splits a config's problems one per
	// item (file, line, field, message).
	Error  string   `json:"error,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// reload answers 200 when the file was applied or found unchanged, 422
// with the reasons when it was refused. The backend logs the outcome.
func (a *adminServer) reload(w http.ResponseWriter, r *http.Request) {
	a.log.Info("reload requested through the admin API; reloading", "remote", r.RemoteAddr)
	changed, err := a.b.ReloadFromFile()
	if err == nil {
		writeJSON(w, http.StatusOK, reloadResult{Changed: changed})
		return
	}
	res := reloadResult{Changed: false, Error: err.Error()}
	var ce config.Errors
	if errors.As(err, &ce) {
		for _, e := range ce {
			res.Errors = append(res.Errors, e.Error())
		}
	}
	writeJSON(w, http.StatusUnprocessableEntity, res)
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only a programmer's bug (a type json cannot encode) gets here.
		http.Error(w, "encoding: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// redactedValue replaces a secret in GET /api/v1/config. An empty secret
// stays empty, so an operator can see that none is set.
const redactedValue = "[redacted]"

// redactConfig returns cfg as JSON-ready data under its YAML names, in
// file order, with durations, sizes and rates written as in the file and
// secrets replaced by redactedValue.
func redactConfig(cfg *config.Config) any {
	return redactValue(reflect.ValueOf(cfg))
}

// jsonObject is a JSON object that keeps its keys in order.
type jsonObject []jsonField

type jsonField struct {
	key string
	val any
}

// MarshalJSON implements json.Marshaler.
func (o jsonObject) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(f.val)
		if err != nil {
			return nil, err
		}
		b = append(append(append(b, k...), ':'), v...)
	}
	return append(b, '}'), nil
}

// redactValue converts v, walking structs by their yaml tags.
func redactValue(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return redactValue(v.Elem())
	case reflect.String:
		return redactUserinfo(v.String())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = redactValue(v.Index(i))
		}
		return out
	case reflect.Map:
		return redactMap(v, redactValue)
	}
	if v.CanInterface() {
		if z, ok := v.Interface().(interface{ IsZero() bool }); ok && z.IsZero() {
			return nil
		}
		if s, ok := v.Interface().(fmt.Stringer); ok {
			return s.String() // Duration, Size, Rate: as written in a file
		}
	}
	if v.Kind() == reflect.Struct {
		return redactStruct(v)
	}
	if v.CanInterface() {
		return v.Interface()
	}
	return nil
}

func redactStruct(v reflect.Value) jsonObject {
	t := v.Type()
	out := make(jsonObject, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		fv := v.Field(i)
		if config.Secret(f) {
			out = append(out, jsonField{name, redactSecret(fv)})
			continue
		}
		out = append(out, jsonField{name, redactValue(fv)})
	}
	return out
}

// redactMap converts a map with its keys sorted.
func redactMap(v reflect.Value, value func(reflect.Value) any) any {
	if v.IsNil() {
		return nil
	}
	keys := v.MapKeys()
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = fmt.Sprint(k.Interface())
	}
	idx := make([]int, len(keys))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
	out := make(jsonObject, 0, len(keys))
	for _, i := range idx {
		out = append(out, jsonField{names[i], value(v.MapIndex(keys[i]))})
	}
	return out
}

// redactSecret hides the value of a field marked secret: a string unless
// empty, each element of a list, each value of a map (its keys, such as
// header names, are kept), anything else whole unless zero.
func redactSecret(v reflect.Value) any {
	switch v.Kind() {
	case reflect.String:
		if v.Len() == 0 {
			return ""
		}
		return redactedValue
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return redactSecret(v.Elem())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = redactSecret(v.Index(i))
		}
		return out
	case reflect.Map:
		return redactMap(v, redactSecret)
	}
	if v.IsZero() {
		return redactValue(v)
	}
	return redactedValue
}

// redactUserinfo hides the user info of a URL or of a "user:pass@host"
// address, whatever field holds it ("redis://user:secret@host" from a
// ${NAME} expansion): the whole of it, since a user name alone may be the
// credential. Other strings are returned as they are.
func redactUserinfo(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + 3
	}
	if strings.ContainsAny(s[start:at], "/?#") {
		return s // the "@" is in a path or a query, not in the authority
	}
	if start == 0 && (!strings.Contains(s[:at], ":") || strings.ContainsAny(s[:at], " \t\n")) {
		return s // an e-mail address or prose, not "user:pass@host"
	}
	return s[:start] + redactedValue + s[at:]
}
