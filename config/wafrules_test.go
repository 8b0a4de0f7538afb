package config

import "testing"

func TestRampartRulesSwitch(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"omitted", "", DefaultRampartRules},
		{"on", "on", true},
		{"off", "off", false},
		{"true", "true", true},
		{"false", "false", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := "listeners:\n  web: {address: \"127.0.0.1:8080\"}\nupstreams:\n  app: {targets: [{url: \"http://127.0.0.1:9000\"}]}\n" +
				"routes:\n  - {name: r, upstream: app, waf: p}\nwaf:\n  p:\n    mode: block\n"
			if tc.value != "" {
				y += "    rampart_rules: " + tc.value + "\n"
			}
			c, err := Parse([]byte(y), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if got := c.WAF["p"].RampartRules; got == nil || *got != tc.want {
				t.Errorf("rampart_rules %q: got %v; want %v", tc.value, got, tc.want)
			}
		})
	}
}
