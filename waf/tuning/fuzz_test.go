package tuning

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
)

// FuzzRead feeds audit logs whose request parts (URI, method, argument
// names) are attacker input: Read must not fail on them, and the proposed
// exclusions must always be YAML that decodes strictly to what was
// proposed.
func FuzzRead(f *testing.F) {
	f.Add("GET", "/odata?$filter=x", "ARGS_NAMES:$filter", "shop")
	f.Add("POST", "/a/\"b\"\n#c: d", "ARGS:json.x.0.y", "p: q")
	f.Add("x\ty", "/%zz/..;/a", "REQUEST_HEADERS:x-a\"b", "")
	f.Add("GET", "http://h/p?q", "REQUEST_XML:/*", "w\u2028x")
	f.Fuzz(func(t *testing.T, method, uri, target, policy string) {
		e := waf.Event{Route: "r", Policy: policy, Method: method, URI: uri, Action: "blocked",
			Rules: []waf.RuleMatch{{ID: 942100, Target: target, Targets: []string{target, target + "2"}}}}
		line, err := json.Marshal(e)
		if err != nil {
			t.Skip()
		}
		s, err := Read(bytes.NewReader(append(line, '\n')), Filter{PathDepth: 1})
		if err != nil {
			t.Fatal(err)
		}
		props, _ := Propose(s.Groups)
		var b bytes.Buffer
		if err := WriteYAML(&b, props); err != nil {
			t.Fatal(err)
		}
		if len(props) == 0 {
			return
		}
		var doc struct {
			WAF map[string]struct {
				Exclusions []config.Exclusion `yaml:"exclusions"`
			} `yaml:"waf"`
		}
		dec := yaml.NewDecoder(strings.NewReader(b.String()))
		dec.KnownFields(true)
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("the proposals are not YAML: %v\n%s", err, b.String())
		}
		got := doc.WAF[props[0].Policy].Exclusions
		if len(got) != len(props) || got[0].PathPrefix != props[0].Exclusion.PathPrefix ||
			strings.Join(got[0].Methods, ",") != strings.Join(props[0].Exclusion.Methods, ",") ||
			strings.Join(got[0].Targets, ",") != strings.Join(props[0].Exclusion.Targets, ",") {
			t.Fatalf("decoded %+v; proposed %+v\n%s", got, props, b.String())
		}
	})
}
