package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestE2EConnectRetryDefault: with two targets, one of which refuses
// connections, and neither a health check nor retries configured, every
// request of every method (a POST with its body too) is answered 200 by the
// live target: a connect failure sent nothing, so connect_retries (by
// default one less than the targets) tries the other, for HTTP/1.1 and
// HTTP/2 upstreams alike. connect_retries: 0 turns it off.
func TestE2EConnectRetryDefault(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Method", r.Method)
		_, _ = w.Write(b)
	})
	h1 := startHTTPUpstream(t, echo)
	h2 := startH2CUpstream(t, echo)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions}
	cases := []struct {
		name, protocol, live, extra string
		wantFailures                bool
	}{
		{name: "http1 default", protocol: "http1", live: "http://" + h1.addr()},
		{name: "http2 default", protocol: "http2", live: h2.URL},
		{name: "http1 retries 0 does not matter", protocol: "http1", live: "http://" + h1.addr(), extra: "retries: 0"},
		{name: "http1 connect_retries 0", protocol: "http1", live: "http://" + h1.addr(), extra: "connect_retries: 0", wantFailures: true},
		{name: "http2 connect_retries 0", protocol: "http2", live: h2.URL, extra: "connect_retries: 0", wantFailures: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dead := "http://" + freeAddr(t)
			p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
upstreams:
  app:
    protocol: %s
    targets:
      - url: %s
      - url: %s
%s
routes:
  - name: all
    upstream: app
access_log:
  path: "off"
`, tc.protocol, dead, tc.live, indent(tc.extra, 4)))
			c := &http.Client{Timeout: e2eTimeout}
			failures := 0
			for round := range 4 { // round robin: each method meets the dead target first at least once
				for _, m := range methods {
					body := fmt.Sprintf("body of %s %d", m, round)
					var rb io.Reader = strings.NewReader(body)
					if m == http.MethodHead {
						rb = nil // a HEAD request with a body is a client's mistake
					}
					req, err := http.NewRequest(m, "http://"+p.addr+"/x", rb)
					if err != nil {
						t.Fatal(err)
					}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatalf("%s: %v", m, err)
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failures++
						if !tc.wantFailures {
							t.Errorf("%s round %d: status %d; want 200", m, round, resp.StatusCode)
						} else if resp.StatusCode != http.StatusBadGateway {
							t.Errorf("%s round %d: status %d; want 200 or 502", m, round, resp.StatusCode)
						}
						continue
					}
					if want := body; m == http.MethodHead && len(got) != 0 || m != http.MethodHead && string(got) != want {
						t.Errorf("%s round %d: body %q; want %q", m, round, got, body)
					}
					if gm := resp.Header.Get("X-Method"); gm != m {
						t.Errorf("%s round %d: the target saw %q; want %q", m, round, gm, m)
					}
				}
			}
			if tc.wantFailures && failures == 0 {
				t.Errorf("no 502 with connect_retries: 0; want the dead target's picks answered 502")
			}
		})
	}
}
