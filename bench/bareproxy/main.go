// Command bareproxy is the floor Rampart is measured against in bench/run.sh
// (proxy "fasthttp"): a fasthttp.Server that hands every request to one
// fasthttp.HostClient, with nothing else. No routing, no proxy headers, no
// limits, no logging: what Go and fasthttp cost before Rampart adds its own
// work.
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18086", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:18080", "upstream host:port")
	flag.Parse()
	hc := &fasthttp.HostClient{Addr: *upstream, MaxConns: 4096}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := hc.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error("bad gateway", fasthttp.StatusBadGateway)
			}
		},
		ReduceMemoryUsage: true, // as Rampart keeps idle connections small
	}
	log.Fatal(srv.ListenAndServe(*addr))
}
