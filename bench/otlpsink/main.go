// Command otlpsink is the OTLP/HTTP receiver of bench/run.sh's trace
// scenario: it decodes each export (the official proto types) and counts the
// spans, then forgets them, so that what is measured is Rampart's side of
// tracing. GET /count answers the spans received so far.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "listen address")
	flag.Parse()
	var spans atomic.Int64
	empty, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	http.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				spans.Add(int64(len(ss.GetSpans())))
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(empty)
	})
	http.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, spans.Load())
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
