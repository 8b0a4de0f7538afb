package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// auditSample is an audit log as a policy writes it: two routes, a rule
// that matched two arguments, a body the engine could not parse, and a
// line that is not an event.
const auditSample = `{"time":"2026-12-07T10:00:00Z","request_id":"a","client_ip":"203.0.113.7","route":"api","policy":"shop","method":"GET","uri":"/odata/v4/Orders?$filter=x&$orderby=y","action":"blocked","status":403,"anomaly_score":5,"rules":[{"id":942290,"msg":"Finds basic MongoDB SQL injection attempts","severity":"critical","target":"ARGS_NAMES:$filter","targets":["ARGS_NAMES:$filter","ARGS_NAMES:$orderby"],"data":"$filter"},{"id":949110,"msg":"Inbound Anomaly Score Exceeded","target":"TX:blocking_inbound_anomaly_score"}]}
{"time":"2026-12-07T10:00:01Z","request_id":"b","client_ip":"203.0.113.7","route":"api","policy":"shop","method":"POST","uri":"/api/v1/items/17","action":"detected","status":403,"anomaly_score":5,"rules":[{"id":932235,"msg":"Remote Command Execution","target":"ARGS:json.lines.3.text","data":"make test"}]}
{"time":"2026-12-07T10:00:02Z","request_id":"c","client_ip":"203.0.113.8","route":"rpc","policy":"legacy","method":"POST","uri":"/xmlrpc","action":"blocked","status":400,"anomaly_score":0,"rules":[{"id":200002,"msg":"Failed to parse request body.","target":"REQBODY_ERROR"}]}
{"time":"2026-12-07T10:00:03Z","request_id":"d","client_ip":"198.51.100.9","route":"api","policy":"shop","method":"GET","uri":"/search","action":"blocked","status":403,"anomaly_score":5,"rules":[{"id":942100,"msg":"SQL Injection","target":"ARGS:a,ctl:ruleEngine=Off","data":"x"}]}
garbage
`

func TestWAFReportCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(auditSample), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		code     int
		want     []string
		wantNot  []string
		wantErrs []string
	}{
		{name: "whole log", args: []string{"--audit-log", path}, want: []string{
			"4 events (3 blocked, 1 detected); 1 lines are not events",
			"route api (policy shop): 3 events",
			"not proposed (the name matched holds characters an exclusion cannot carry",
			"  942100  GET  /search  ARGS:a,ctl:ruleEngine=Off",
			"route rpc (policy legacy): 1 events",
			"942290  GET      /odata/v4/Orders  ARGS_NAMES:$orderby",
			"not excludable (the body could not be inspected; fix the client): 200002 (1 hits)",
			"  shop:\n    exclusions:\n",
			`targets: ["ARGS_NAMES:$filter", "ARGS_NAMES:$orderby"]`,
			`targets: ["ARGS:/^json\\.lines\\.\\d+\\.text$/"]`,
			`path_prefix: "/api/v1/items/17"`,
		}, wantNot: []string{"949110", "legacy:\n", `"/search"`}},
		{name: "one route, blocked only, path depth", args: []string{"--audit-log", path, "--route", "api", "--blocked", "--path-depth", "2"},
			want: []string{"2 events (2 blocked, 0 detected)", `path_prefix: "/odata/v4"`}, wantNot: []string{"932235", "rpc"}},
		{name: "no log", args: []string{}, code: 2, wantErrs: []string{"--audit-log FILE is required"}},
		{name: "missing file", args: []string{"--audit-log", path + ".none"}, code: 2, wantErrs: []string{"no such file"}},
		{name: "bad depth", args: []string{"--audit-log", path, "--path-depth", "-1"}, code: 2},
		{name: "help", args: []string{"--help"}, want: []string{"usage: rampart waf report"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"waf", "report"}, c.args...), &stdout, &stderr)
			if code != c.code {
				t.Fatalf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout.String(), stderr.String())
			}
			for _, w := range c.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(stdout.String(), w) {
					t.Errorf("stdout has %q:\n%s", w, stdout.String())
				}
			}
			for _, w := range c.wantErrs {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

func TestWAFEvalUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown class", []string{"--classes", "sqli,csrf"}, `unknown class "csrf"`},
		{"unknown placement", []string{"--placements", "body"}, `unknown placement "body"`},
		{"unknown source", []string{"--source", "zap"}, `unknown source "zap"`},
		{"route without config", []string{"--route", "api"}, "--route needs --config"},
		{"config without route", []string{"--config", "x.yaml"}, "--config needs --route"},
		{"bad url", []string{"--url", "https://127.0.0.1:8443"}, "want http://host:port"},
		{"url and config", []string{"--url", "http://127.0.0.1:1", "--config", "x.yaml"}, "exclude each other"},
		{"audit log in process", []string{"--audit-log", "a.jsonl"}, "--audit-log goes with --url"},
		{"bad status", []string{"--url", "http://127.0.0.1:1", "--block-status", "forbidden"}, "want HTTP statuses"},
		{"negative sample", []string{"--sample", "-1"}, "want 0 or more"},
		{"paranoia", []string{"--crs-paranoia", "5"}, "want 1 to 4"},
		{"unknown flag", []string{"--fast"}, "flag provided but not defined"},
		{"nothing listening", []string{"--url", "http://127.0.0.1:1", "--classes", "nosqli", "--sample", "1", "--no-benign"}, "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"waf", "eval"}, c.args...), &stdout, &stderr); code != wafExitError {
				t.Fatalf("exit %d; want %d\n%s", code, wafExitError, stdout.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr = %q; want it to contain %q", stderr.String(), c.want)
			}
		})
	}
}
