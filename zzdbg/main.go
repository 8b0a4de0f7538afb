package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/corazawaf/coraza/v3/experimental/plugins/plugintypes"
	"github.com/corazawaf/coraza/v3/types"
	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/waf/eval"
)

func main() {
	c, err := eval.Embedded()
	if err != nil {
		panic(err)
	}
	cases, _ := c.Cases(eval.Selection{Sample: 1, Seed: 1})
	p, err := waf.Compile("dbg", &config.WAFPolicy{}, waf.Options{Hooks: waf.Hooks{Request: func(_ string, tx types.Transaction) {
		vars := tx.(interface{ Variables() plugintypes.TransactionVariables }).Variables()
		for _, m := range vars.ArgsPath().FindAll() {
			fmt.Printf("  ARGS_PATH %q = %q\n", m.Key(), m.Value())
		}
		for _, m := range tx.MatchedRules() {
			if m.Rule().ID() > 910000 && m.Rule().ID() < 949000 || m.Rule().ID() >= 9500001 {
				fmt.Printf("  matched %d %s | %s\n", m.Rule().ID(), m.Message(), m.Data())
			}
		}
	}}})
	if err != nil {
		panic(err)
	}
	n := 0
	for _, cs := range cases {
		if cs.Attack != (len(os.Args) > 1) {
			continue
		}
		n++
		if n > 6 {
			break
		}
		fmt.Println("CASE", cs.Name)
		raw := cs.Req.AppendRaw(nil)
		var req fasthttp.Request
		req.Read(bufio.NewReader(bytes.NewReader(raw)))
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5000}, nil)
		v := p.Inspect(&ctx, waf.Request{ID: []byte("x"), ClientIP: netip.MustParseAddr("127.0.0.1")})
		fmt.Println("  status", v.Status)
		v.Close()
	}
}
