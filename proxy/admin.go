package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"reflect"
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

	// token is the SHA-256 of the bearer token; nil when none is required.
	// Comparing digests keeps the comparison constant-time whatever the
	// length presented.
	token atomic.Pointer[[sha256.Size]byte]

	mux  *http.ServeMux
	ln   net.Listener
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// newAdminServer binds addr and serves the admin API on it until Shutdown.
// token, when not empty, is required as "Authorization: Bearer TOKEN" on
// every endpoint but /healthz and /readyz. reg is the registry /metrics
// exposes.
func newAdminServer(addr, token string, b adminBackend, reg *prometheus.Registry, log *slog.Logger) (*adminServer, error) {
	if addr == "" {
		return nil, errors.New("proxy: admin: no address")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &adminServer{b: b, reg: reg, log: log.With("listener", "admin"), mux: http.NewServeMux(), done: make(chan struct{})}
	a.SetToken(token)
	a.routes()
	ln, err := net.Listen("tcp", addr)
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

// SetToken replaces the bearer token (a reload that changed admin.token);
// "" switches authentication off.
func (a *adminServer) SetToken(token string) {
	if token == "" {
		a.token.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(token))
	a.token.Store(&sum)
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
}

// ServeHTTP checks the bearer token, then hands over to the mux. Only the
// probes are open: a kubelet sends no token. Everything else, unknown paths
// included, needs it, so an unauthenticated client learns nothing of the API.
func (a *adminServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rampart admin"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
		return
	}
	a.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the bearer token, or none is set.
func (a *adminServer) authorized(r *http.Request) bool {
	want := a.token.Load()
	if want == nil {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
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
func (a *adminServer) reload(w http.ResponseWriter, _ *http.Request) {
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

// secretFields lists the config fields that hold a secret, by struct type
// and Go field name; they are redacted wherever the type appears. To
// protect a new secret field, add it here (TestSecretFieldsExist keeps the
// list honest). Field and map key names that look secret are redacted too
// (secretName), as a safety net for fields nobody listed.
var secretFields = map[reflect.Type][]string{
	reflect.TypeFor[config.Admin](): {"Token"},
	reflect.TypeFor[config.Redis](): {"Password"},
	reflect.TypeFor[config.ACME]():  {"EncryptionKey", "PreviousEncryptionKeys"},
}

// secretWords are the parts of a field name or map key (a header matcher
// such as Authorization or X-Api-Key) that mark its string value secret.
var secretWords = []string{"password", "passwd", "secret", "token", "credential", "authorization", "apikey", "api_key", "api-key"}

// secretName reports whether a field or key named name holds a secret.
func secretName(name string) bool {
	n := strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// isSecretField reports whether field f of struct type t holds a secret.
func isSecretField(t reflect.Type, f reflect.StructField, yamlName string) bool {
	for _, name := range secretFields[t] {
		if f.Name == name {
			return true
		}
	}
	return secretName(yamlName)
}

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
		return redactURL(v.String())
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
		return redactMap(v)
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
		if isSecretField(t, f, name) {
			out = append(out, jsonField{name, redactSecret(fv)})
			continue
		}
		out = append(out, jsonField{name, redactValue(fv)})
	}
	return out
}

// redactMap converts a map with its keys sorted; a string value under a
// secret-looking key is redacted.
func redactMap(v reflect.Value) any {
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
		mv := v.MapIndex(keys[i])
		if secretName(names[i]) && mv.Kind() == reflect.String {
			out = append(out, jsonField{names[i], redactSecret(mv)})
			continue
		}
		out = append(out, jsonField{names[i], redactValue(mv)})
	}
	return out
}

// redactSecret hides a secret field's value: a string unless empty,
// anything else (a list of keys, a struct) whole unless zero.
func redactSecret(v reflect.Value) any {
	if v.IsZero() {
		return redactValue(v)
	}
	return redactedValue
}

// redactURL hides the password of a URL's userinfo
// ("http://user:secret@host" from a ${NAME} expansion) as url.Redacted does.
func redactURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); !ok {
		return s
	}
	return u.Redacted()
}
