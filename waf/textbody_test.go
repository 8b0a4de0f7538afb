package waf

import (
	"slices"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

func TestJSONArgs(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       [][2]string // nil: not JSON
	}{
		{"one document", `{"a":{"b":"x","n":1.5},"list":[true,null,"y"]}`,
			[][2]string{{"json.a.b", "x"}, {"json.a.n", "1.5"}, {"json.list.0", "true"}, {"json.list.1", ""}, {"json.list.2", "y"}}},
		{"array at the top", `[{"id":1},{"id":2}]`, [][2]string{{"json.0.id", "1"}, {"json.1.id", "2"}}},
		{"lines of JSON", "{\"event_id\":\"9ec7\"}\n{\"type\":\"event\"}\n{\"exception\":{\"values\":[{\"value\":\"x\"}]}}\n",
			[][2]string{{"json.0.event_id", "9ec7"}, {"json.1.type", "event"}, {"json.2.exception.values.0.value", "x"}}},
		{"empty object", `{}`, [][2]string{}},
		{"text", `hello there`, nil},
		{"a bare string", `"hello"`, nil},
		{"JSON then text", `{"a":1} and more`, nil},
		{"unclosed", `{"a":[1,2`, nil},
		{"too deep", strings.Repeat("[", 40) + strings.Repeat("]", 40), nil},
		{"too many values", "[" + strings.Repeat("1,", 50) + "1]", nil},
	} {
		got, ok := jsonArgs([]byte(tc.body), 32, 50)
		if tc.want == nil {
			if ok {
				t.Errorf("%s: got %v; want not JSON", tc.name, got)
			}
			continue
		}
		if !ok || !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}

// TestTextBody: with the api group, a text/plain or line-delimited JSON
// body is inspected as the application reads it (as JSON when it is
// JSON, whole otherwise) and its media type is allowed; without the
// group the CRS refuses the media type.
func TestTextBody(t *testing.T) {
	yes := true
	on := policy(t, "text-body", config.WAFPolicy{Mode: config.WAFModeBlock, RampartRules: &yes,
		Rules: `SecRule REQUEST_BODY "@contains evil" "id:10002,phase:2,deny,status:403,log"`})
	noAPI, off := rrPolicy(t, true, "api"), rrPolicy(t, false)
	envelope := "{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2026-12-07T10:00:00.000Z\"}\n{\"type\":\"event\"}\n" +
		"{\"exception\":{\"values\":[{\"type\":\"TypeError\",\"value\":\"Cannot read properties of undefined (reading 'total')\"}]},\"level\":\"error\"}\n"
	for _, tc := range []struct {
		name, ctype, body string
		blocked           bool
		rule              int    // a rule the audit event must name, 0: none
		target            string // the target of rule, "" any
	}{
		{"error tracker envelope", "text/plain;charset=UTF-8", envelope, false, 920420, ""},
		{"beacon JSON", "text/plain", `{"page":"/checkout","ms":412,"events":["view","scroll"]}`, false, 920420, ""},
		{"plain text", "text/plain", "Hello, just checking in about my order from last week.", false, 920420, ""},
		{"log lines", "application/x-ndjson", "{\"level\":\"info\",\"msg\":\"started\"}\n{\"level\":\"warn\",\"msg\":\"slow query\"}\n", false, 920420, ""},
		{"SQL injection in JSON sent as text", "text/plain", `{"q":"1' UNION SELECT username, password FROM users--"}`, true, 942100, "ARGS:json.q"},
		{"XSS in a line of JSON", "application/x-ndjson", "{\"a\":\"ok\"}\n{\"bio\":\"<script>alert(document.cookie)</script>\"}\n", true, 941100, "ARGS:json.1.bio"},
		{"XSS in text", "text/plain", `<img src=x onerror=alert(document.domain)>`, true, 941100, "ARGS:text"},
		// The pair is an argument of its own: the whole text alone is a
		// filter expression (name=value), which the prose group passes.
		{"Java class in a name=value text", "text/plain", "test=com.opensymphony.xwork2", true, 944130, "ARGS:test"},
		// A rule on REQUEST_BODY reads the body, as with the form reading.
		{"a user's rule on REQUEST_BODY", "text/plain", "hello evil world", true, 10002, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := postReq("/api/events", tc.ctype, tc.body)
			v, id := inspect(t, on, raw)
			if v.Blocked() != tc.blocked {
				t.Fatalf("got blocked %v (score %d, rules %v); want %v", v.Blocked(), v.Score, ruleIDsOf(testAudit.event(t, id)), tc.blocked)
			}
			if tc.rule != 0 {
				e := testAudit.event(t, id)
				found := false
				for _, r := range e.Rules {
					if r.ID == tc.rule && (tc.target == "" || r.Target == tc.target || slices.Contains(r.Targets, tc.target)) {
						found = true
					}
				}
				if !found {
					t.Errorf("audit event rules %+v; want %d on %q", e.Rules, tc.rule, tc.target)
				}
			}
			for name, p := range map[string]*Policy{"api group off": noAPI, "rampart_rules off": off} {
				if v, _ := inspect(t, p, raw); !v.Blocked() {
					t.Errorf("%s: got status %d; want blocked (920420)", name, v.Status)
				}
			}
		})
	}
}

func TestTextMediaType(t *testing.T) {
	for _, tc := range []struct {
		ct   string
		want bool
	}{
		{"text/plain", true},
		{"Text/Plain; charset=UTF-8", true},
		{"application/x-ndjson", true},
		{"application/jsonl", true},
		{"application/x-jsonlines", true},
		{"text/plainx", false},
		{"text/html", false},
		{"application/json", false},
		{"", false},
	} {
		if got := textMediaType(tc.ct); got != tc.want {
			t.Errorf("textMediaType(%q) = %v; want %v", tc.ct, got, tc.want)
		}
	}
}
