package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Variant bodies of the respond route: the reloader flips between them and
// then watches /ping until the new one is served, which proves that the
// reload took effect.
const (
	pingA = "soak variant a\n"
	pingB = "soak variant b\n"
)

// Rate limit policy names, as the RateLimit response header names them.
const (
	sharedPolicy = "shared"
	localPolicy  = "local"
)

// ports are the loopback ports of the processes the soak starts.
type ports struct {
	admin, web, redis int
	upstreams         [numUpstreams]int
}

// renderConfig returns Rampart's config. variant (0 or 1) changes three
// things, each a different kind of rebuild on reload: the respond route's
// body, the weight of the first target (a new pool, its targets' state
// carried over by address) and a header matcher on the /mem/ route (a new
// router). The load always sends the header, so both variants route it
// alike.
func renderConfig(p ports, variant int) string {
	body, weight, match := pingA, 1, ""
	if variant == 1 {
		body, weight, match = pingB, 2, "\n      headers: {X-Soak: \"1\"}"
	}
	var targets strings.Builder
	for i, port := range p.upstreams {
		w := ""
		if i == 0 {
			w = fmt.Sprintf("\n        weight: %d", weight)
		}
		fmt.Fprintf(&targets, "      - url: http://127.0.0.1:%d%s\n", port, w)
	}
	return fmt.Sprintf(`# Written by bench/soak; variant %d.
admin:
  address: 127.0.0.1:%d

listeners:
  web:
    address: 127.0.0.1:%d

upstreams:
  app:
    balancer: least_conn
    targets:
%s    health_check:
      path: /health
      interval: 1s
      timeout: 500ms
      healthy_threshold: 1
      unhealthy_threshold: 2
    passive:
      max_failures: 3
      ejection: 5s
      max_ejection: 10s
    timeouts:
      connect: 1s
      read: 5s
    retries: 1

routes:
  - name: waf
    match:
      path_prefix: /
    upstream: app
    waf: crs
    rate_limit: %s

  - name: mem
    match:
      path_prefix: /mem/%s
    upstream: app
    rate_limit: %s

  - name: ping
    match:
      path_prefix: /ping
    respond:
      status: 200
      body: %q

waf:
  crs:
    mode: block
    paranoia_level: 1

# Far above the soak's load: a refusal (429) is a failure.
rate_limits:
  %s:
    key: client_ip
    rate: 100000/s
    burst: 100000
    store: redis
    on_store_error: allow
  %s:
    key: client_ip
    rate: 100000/s
    burst: 100000
    store: memory

redis:
  address: 127.0.0.1:%d
  timeout: 200ms

access_log:
  path: "off"

shutdown:
  grace_period: 5s
`, variant, p.admin, p.web, targets.String(), sharedPolicy, match, localPolicy, body,
		sharedPolicy, localPolicy, p.redis)
}

// writeConfig replaces path atomically (a temporary file renamed over it),
// so that neither the file watcher nor a SIGHUP ever reads half a file.
func writeConfig(path string, p ports, variant int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rampart-*.yaml")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(renderConfig(p, variant)); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
