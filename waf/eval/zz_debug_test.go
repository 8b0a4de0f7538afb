package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/proxy"
	"github.com/rampart-proxy/rampart/waf"
)

func TestZZDebugFP(t *testing.T) {
	var buf bytes.Buffer
	al := waf.NewAuditLog(&buf, 100000)
	cfg := config.WAFPolicy{Mode: config.WAFModeBlock, ParanoiaLevel: 1, AnomalyThreshold: 5, RequestBodyLimitAction: config.BodyLimitReject}
	p, err := waf.Compile("dbg", &cfg, waf.Options{Audit: al})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Embedded()
	cases, err := c.Cases(Selection{NoAttacks: true})
	if err != nil {
		t.Fatal(err)
	}
	want := os.Getenv("DBG")
	for _, cs := range cases {
		if want != "" && !strings.Contains(cs.Name, want) {
			continue
		}
		raw := cs.Req.AppendRaw(nil)
		var req fasthttp.Request
		if err := req.Read(bufioReader(raw)); err != nil {
			continue
		}
		u := req.URI()
		target, _ := proxy.NormalizedTarget(u.PathOriginal(), u.QueryString())
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, localAddr, nil)
		v := p.Inspect(&ctx, waf.Request{ID: []byte(cs.Name), ClientIP: netip.AddrFrom4([4]byte{127, 0, 0, 1}), Route: "r", URI: target})
		if v.Blocked() || os.Getenv("ALL") != "" {
			fmt.Printf("=== %s blocked=%v\n", cs.Name, v.Blocked())
		}
		v.Close()
	}
	al.Close()
	time.Sleep(100 * time.Millisecond)
	for _, line := range strings.Split(buf.String(), "\n") {
		var e waf.Event
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		fmt.Printf("--- %s %s score=%d %s\n", e.RequestID, e.Action, e.AnomalyScore, e.URI)
		for _, r := range e.Rules {
			if r.ID/1000 == 949 || r.ID/1000 == 980 {
				continue
			}
			fmt.Printf("   %d %s %v | %.160q\n", r.ID, r.Target, r.Targets, r.Data)
		}
	}
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
