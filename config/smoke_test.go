package config

import (
	"fmt"
	"os"
	"testing"
)

func TestSmoke(t *testing.T) {
	for _, f := range []string{"testdata/full.yaml", "testdata/minimal.yaml"} {
		data, _ := os.ReadFile(f)
		c, err := Parse(data, f)
		fmt.Printf("%s: %v\n%+v\n", f, err, c)
	}
	bad := `listeners:
  web:
    address: ":99999"
    limits: {idle_timeout: abc, max_header_bytes: [1], max_connections: x}
    foo: 1
  other:
    address: ":8080"
    limits:
      read_timeout:
        a: b
upstreams:
  app:
    balancer: nope
    targets:
      - url: ftp://x/y
routes:
  - name: api
    matchh: {}
    upstream: missing
  - upstream: app
    split: [{upstream: app, weight: 0}]
    match: {host: "bad host", methods: ["G ET"], path_prefix: v1}
rate_limits:
  r: {rate: abc, store: redis}
  s: {rate: 0/s}
waf:
  w: {exclusions: [{rule_ids: [949110, -1]}], mode: x, paranoia_level: 9}
trusted_proxies: [1.2.3.4/40, "${NOPE}"]
listeners: {}
`
	_, err := Parse([]byte(bad), "rampart.yaml")
	fmt.Println(err)
	for _, s := range []string{"", "# c\n", "- a\n", "a: [", "a: 1\n---\nb: 2\n", "listeners:\n  web:\n"} {
		_, err := Parse([]byte(s), "x.yaml")
		fmt.Printf("%q => %v\n", s, err)
	}
}
