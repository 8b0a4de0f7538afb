package waf

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// benchJSON is a benign JSON document of about 15 KB with 200 values.
func benchJSON() string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"Product number ` + strconv.Itoa(i) + ` with a longer descriptive title for it","description":"Cotton shirt, machine washable at 30 degrees, in several sizes ` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString(`]}`)
	return b.String()
}

// benchInspect inspects raw with the default policy, Rampart's rules on
// (the default) or off: the Off benchmarks are the baseline the rules'
// cost is read against (the rules must cost at most 15%, issue 20).
func benchInspect(b *testing.B, raw string, rules ...bool) {
	cfg := config.WAFPolicy{Mode: config.WAFModeBlock}
	name := "bench"
	if len(rules) > 0 && !rules[0] {
		cfg.RampartRules, name = &rules[0], "bench-rules-off"
	}
	p := policy(b, name, cfg)
	ctx := newCtx(b, raw)
	info := Request{ID: []byte("bench-request-id"), ClientIP: netip.MustParseAddr("192.0.2.7"), Route: "r"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for range b.N {
		v := p.Inspect(ctx, info)
		if v.Blocked() || v.Action != ActionPass {
			b.Fatalf("benign request: status %d action %v", v.Status, v.Action)
		}
		v.Close()
	}
	// The process's CPU time per inspection: unlike ns/op, it does not
	// count the time the benchmark waited for a CPU on a shared machine.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time the process used so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkInspectGET(b *testing.B) {
	benchInspect(b, "GET /products/42?page=2&sort=price HTTP/1.1\n"+browserHeaders+"\nCookie: session=abc123; theme=dark\n\n")
}

func BenchmarkInspectPOST16K(b *testing.B) {
	body := benchJSON()
	benchInspect(b, "POST /api/orders HTTP/1.1\n"+browserHeaders+"\nContent-Type: application/json\nContent-Length: "+strconv.Itoa(len(body))+"\n\n"+body)
}

var _ = fasthttp.StatusOK

// BenchmarkInspectGETSearch is bench/scenario_waf.sh's GET: five query
// arguments, browser headers and a cookie.
func BenchmarkInspectGETSearch(b *testing.B) {
	benchInspect(b, "GET /search?q=running+shoes&category=sport&page=2&sort=price_asc&lang=en HTTP/1.1\nHost: shop.example.com\n"+
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n"+
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\nAccept-Language: en-GB,en;q=0.5\n"+
		"Referer: https://shop.example.com/\nCookie: session=3f2a9c4e7b1d; theme=dark\n\n")
}

const (
	benchGET       = "GET /products/42?page=2&sort=price HTTP/1.1\n" + browserHeaders + "\nCookie: session=abc123; theme=dark\n\n"
	benchGETSearch = "GET /search?q=running+shoes&category=sport&page=2&sort=price_asc&lang=en HTTP/1.1\nHost: shop.example.com\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\nAccept-Language: en-GB,en;q=0.5\n" +
		"Referer: https://shop.example.com/\nCookie: session=3f2a9c4e7b1d; theme=dark\n\n"
)

func benchPOST16K() string {
	body := benchJSON()
	return "POST /api/orders HTTP/1.1\n" + browserHeaders + "\nContent-Type: application/json\nContent-Length: " + strconv.Itoa(len(body)) + "\n\n" + body
}

func BenchmarkInspectGETRulesOff(b *testing.B)       { benchInspect(b, benchGET, false) }
func BenchmarkInspectGETSearchRulesOff(b *testing.B) { benchInspect(b, benchGETSearch, false) }
func BenchmarkInspectPOST16KRulesOff(b *testing.B)   { benchInspect(b, benchPOST16K(), false) }
