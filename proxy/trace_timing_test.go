package proxy

import (
	"fmt"
	"testing"
)

// BenchmarkTracedGET: GETs through Rampart with tracing off, and on at
// sample_ratio 1 and 0.01, exporting over OTLP/HTTP to an in-process
// receiver built on the official proto types (whose decoding is counted
// too). make bench's trace scenario measures the same on separate
// processes.
func BenchmarkTracedGET(b *testing.B) {
	up := benchUpstream(b)
	for _, tc := range []struct{ name, tracing string }{
		{"off", ""},
		{"on-1", "tracing: {endpoint: %s, insecure: true, sample_ratio: 1}"},
		{"on-0.01", "tracing: {endpoint: %s, insecure: true, sample_ratio: 0.01}"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			tracing := tc.tracing
			if tracing != "" {
				tracing = fmt.Sprintf(tracing, startOTLPHTTP(b, &otlpReceiver{discard: true}))
			}
			benchGET(b, startLoggedProxy(b, up, `{path: "off"}`, tracing))
		})
	}
}
