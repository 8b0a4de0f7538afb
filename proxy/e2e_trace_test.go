package proxy

// OpenTelemetry tracing through a running proxy, to real OTLP receivers
// built on the official proto types: an OTLP/HTTP protobuf handler and a
// gRPC TraceService server, on loopback.

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/rampart-proxy/rampart/config"
)

// otlpReceiver collects the spans exported to it, over OTLP/HTTP
// (ServeHTTP) or gRPC (Export).
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex // guards the fields below
	spans    []*tracepb.Span
	services []string // service.name of each span's resource
	bad      []string // requests that broke the protocol
	// discard keeps no span (benchmarks): only n counts them.
	discard bool
	n       int
}

func (r *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.discard {
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				r.n += len(ss.GetSpans())
			}
		}
		return
	}
	for _, rs := range req.GetResourceSpans() {
		service := attrString(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, s)
				r.services = append(r.services, service)
			}
		}
	}
}

// Export is the gRPC TraceService's method.
func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// ServeHTTP is OTLP/HTTP with protobuf bodies.
func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		r.mu.Lock()
		r.bad = append(r.bad, req.Method+" "+req.URL.Path+" "+req.Header.Get("Content-Type"))
		r.mu.Unlock()
		http.Error(w, "not OTLP/HTTP protobuf", http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(req.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// startOTLPHTTP serves r over OTLP/HTTP; it returns host:port.
func startOTLPHTTP(t testing.TB, r *otlpReceiver) string {
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// startOTLPGRPC serves r over OTLP/gRPC; it returns host:port.
func startOTLPGRPC(t *testing.T, r *otlpReceiver) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, r)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return ln.Addr().String()
}

func attrString(attrs []*commonpb.KeyValue, key string) string {
	for _, a := range attrs {
		if a.GetKey() == key {
			v := a.GetValue()
			if s := v.GetStringValue(); s != "" {
				return s
			}
			return fmt.Sprint(v.GetIntValue())
		}
	}
	return ""
}

// snapshot returns the spans received so far.
func (r *otlpReceiver) snapshot() ([]*tracepb.Span, []string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*tracepb.Span(nil), r.spans...), append([]string(nil), r.services...), append([]string(nil), r.bad...)
}

// traceUpstream records the traceparent and tracestate of each request.
type traceUpstream struct {
	mu     sync.Mutex
	parent []string
	state  []string
}

func (u *traceUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.parent = append(u.parent, r.Header.Get("Traceparent"))
	u.state = append(u.state, r.Header.Get("Tracestate"))
	u.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (u *traceUpstream) last() (parent, state string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.parent) == 0 {
		return "", ""
	}
	return u.parent[len(u.parent)-1], u.state[len(u.state)-1]
}

// splitTraceparent returns the trace id and parent span id of a W3C
// traceparent (version 00), and its flags.
func splitTraceparent(t *testing.T, tp string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		t.Fatalf("traceparent %q: not a W3C traceparent", tp)
	}
	return parts[1], parts[2], parts[3]
}

const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// TestE2ETracing: a request through Rampart produces a server span with a
// child span for its upstream try (and one for the WAF's inspection) at a
// real OTLP receiver, over HTTP and gRPC; the upstream sees the same trace
// id in traceparent, with the try's span as parent. A trusted client's
// traceparent is continued (same trace, its span as the parent) and its
// tracestate sent on; an untrusted client's is replaced by a new trace.
func TestE2ETracing(t *testing.T) {
	cases := []struct {
		name, protocol string
		trusted        bool
		upstreamH2     bool
	}{
		{name: "otlp http, untrusted client", protocol: "http"},
		{name: "otlp grpc, trusted client", protocol: "grpc", trusted: true},
		{name: "otlp http, trusted client, http2 upstream", protocol: "http", trusted: true, upstreamH2: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recv := &otlpReceiver{}
			endpoint := startOTLPHTTP(t, recv)
			if tc.protocol == "grpc" {
				endpoint = startOTLPGRPC(t, recv)
			}
			up := &traceUpstream{}
			target, protocol := "", "http1"
			if tc.upstreamH2 {
				target, protocol = startH2CUpstream(t, up).URL, "http2"
			} else {
				target = "http://" + startHTTPUpstream(t, up).addr()
			}
			trusted := ""
			if tc.trusted {
				trusted = "trusted_proxies: [127.0.0.1/32]"
			}
			p := startProxy(t, fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app:
    protocol: %s
    targets: [{url: %q}]
waf:
  watch:
    mode: detect
    rules: |
      SecRule REQUEST_URI "@contains watched" "id:10005,phase:1,pass,log,msg:'watched'"
routes:
  - {name: traced, upstream: app, waf: watch}
access_log: {path: "off"}
tracing:
  endpoint: %s
  protocol: %s
  insecure: true
  service_name: edge-test
%s
`, protocol, target, endpoint, tc.protocol, trusted))

			req, _ := http.NewRequest(http.MethodGet, "http://"+p.addr+"/items/watched?x=1", nil)
			req.Header.Set("Traceparent", clientParent)
			req.Header.Set("Tracestate", "vendor=abc")
			resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; want 200", resp.StatusCode)
			}
			upParent, upState := up.last()
			upTrace, upSpan, upFlags := splitTraceparent(t, upParent)
			if upFlags != "01" {
				t.Errorf("upstream traceparent flags %s; want 01 (sampled)", upFlags)
			}
			if tc.trusted {
				if upTrace != clientTraceID || upState != "vendor=abc" {
					t.Errorf("upstream saw trace %s, tracestate %q; want the trusted client's %s, vendor=abc", upTrace, upState, clientTraceID)
				}
			} else if upTrace == clientTraceID || upState != "" || upSpan == clientSpanID {
				t.Errorf("upstream saw %q, tracestate %q; want a new trace, the untrusted client's replaced", upParent, upState)
			}

			p.stop(t) // flushes the spans
			spans, services, bad := recv.snapshot()
			if len(bad) > 0 {
				t.Errorf("requests that are not OTLP: %v", bad)
			}
			var server, try, wafSpan *tracepb.Span
			for _, s := range spans {
				switch s.GetKind() {
				case tracepb.Span_SPAN_KIND_SERVER:
					server = s
				case tracepb.Span_SPAN_KIND_CLIENT:
					try = s
				default:
					if s.GetName() == "waf" {
						wafSpan = s
					}
				}
			}
			if server == nil || try == nil || wafSpan == nil || len(spans) != 3 {
				t.Fatalf("got %d spans (server %v, try %v, waf %v); want a server span, one try and the WAF's", len(spans), server != nil, try != nil, wafSpan != nil)
			}
			for i, s := range services {
				if s != "edge-test" {
					t.Errorf("span %d: service.name %q; want edge-test", i, s)
				}
			}
			id := hex.EncodeToString(server.GetTraceId())
			if id != upTrace || hex.EncodeToString(try.GetTraceId()) != id || hex.EncodeToString(wafSpan.GetTraceId()) != id {
				t.Errorf("trace ids: server %s, try %x, waf %x, upstream %s; want one", id, try.GetTraceId(), wafSpan.GetTraceId(), upTrace)
			}
			if got := hex.EncodeToString(try.GetSpanId()); got != upSpan {
				t.Errorf("upstream's parent span %s; want the try's span %s", upSpan, got)
			}
			if !bytesEqual(try.GetParentSpanId(), server.GetSpanId()) || !bytesEqual(wafSpan.GetParentSpanId(), server.GetSpanId()) {
				t.Errorf("the try's and the WAF's spans are not children of the server span")
			}
			wantParent := ""
			if tc.trusted {
				wantParent = clientSpanID
			}
			if got := hex.EncodeToString(server.GetParentSpanId()); got != wantParent {
				t.Errorf("server span's parent %q; want %q", got, wantParent)
			}
			for _, a := range []struct {
				span      *tracepb.Span
				key, want string
			}{
				{server, "http.route", "traced"},
				{server, "http.response.status_code", "200"},
				{server, "rampart.upstream", "app"},
				{server, "rampart.target", target},
				{server, "rampart.waf.verdict", "detected"},
				{server, "network.protocol.version", "1.1"},
				{server, "url.path", "/items/watched"},
				{try, "rampart.target", target},
				{try, "http.response.status_code", "200"},
			} {
				if got := attrString(a.span.GetAttributes(), a.key); got != a.want {
					t.Errorf("%s %s: got %q; want %q", a.span.GetName(), a.key, got, a.want)
				}
			}
			if rules := attrString(wafSpan.GetAttributes(), "rampart.waf.rules"); !strings.Contains(","+rules+",", ",10005,") {
				t.Errorf("waf rampart.waf.rules %q; want 10005 among them", rules)
			}
			if server.GetName() != "GET traced" {
				t.Errorf("server span name %q; want \"GET traced\"", server.GetName())
			}
		})
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) && len(a) > 0 }

// tracedConfig is a listener "web", upstream "app" with targets, a route
// "traced" to it, and tracing to endpoint with the extra YAML lines.
func tracedConfig(endpoint, extra string, targets ...string) string {
	var ts strings.Builder
	for _, t := range targets {
		fmt.Fprintf(&ts, "      - url: %s\n", t)
	}
	return fmt.Sprintf(`
listeners:
  web: {address: "127.0.0.1:0"}
upstreams:
  app:
    targets:
%s
routes:
  - {name: traced, upstream: app}
access_log: {path: "off"}
tracing:
  endpoint: %s
  insecure: true
%s
`, ts.String(), endpoint, indent(extra, 2))
}

// tracedGet sends one GET through the proxy with the given traceparent
// ("": none) and checks the 200.
func tracedGet(t *testing.T, addr, traceparent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/t", nil)
	if traceparent != "" {
		req.Header.Set("Traceparent", traceparent)
	}
	resp, err := (&http.Client{Timeout: e2eTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d; want 200", resp.StatusCode)
	}
}

// TestE2ETracingTries: a connect failure retried on another target gives
// the server span two try spans, the first marked as an error, and the
// upstream sees the second's span as its parent.
func TestE2ETracingTries(t *testing.T) {
	recv := &otlpReceiver{}
	up := &traceUpstream{}
	live := "http://" + startHTTPUpstream(t, up).addr()
	dead := "http://" + freeAddr(t)
	p := startProxy(t, tracedConfig(startOTLPHTTP(t, recv), "", dead, live))
	for range 2 { // round robin: the dead target comes first at least once
		tracedGet(t, p.addr, "")
	}
	p.stop(t)
	spans, _, _ := recv.snapshot()
	tries := map[string][]*tracepb.Span{} // by trace id
	for _, s := range spans {
		if s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT {
			id := hex.EncodeToString(s.GetTraceId())
			tries[id] = append(tries[id], s)
		}
	}
	retried := 0
	for id, ts := range tries {
		if len(ts) != 2 {
			continue
		}
		retried++
		first, second := ts[0], ts[1]
		if attrString(first.GetAttributes(), "rampart.try") == "2" {
			first, second = second, first
		}
		if first.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR || attrString(first.GetAttributes(), "rampart.target") != dead {
			t.Errorf("trace %s: first try %v on %q; want an error on the dead target", id, first.GetStatus(), attrString(first.GetAttributes(), "rampart.target"))
		}
		if attrString(second.GetAttributes(), "http.response.status_code") != "200" || attrString(second.GetAttributes(), "rampart.target") != live {
			t.Errorf("trace %s: second try %v; want 200 from the live target", id, second.GetAttributes())
		}
	}
	if retried == 0 || len(tries) != 2 {
		t.Errorf("%d traces with two tries, of %d traces; want 2 traces, at least one with two", retried, len(tries))
	}
}

// TestE2ETracingSampling: with sample_ratio 0 nothing of Rampart's own is
// recorded, yet the upstream still gets a traceparent (not sampled) of a
// new trace; a trusted client's sampled traceparent is still recorded
// (parent-based sampling).
func TestE2ETracingSampling(t *testing.T) {
	recv := &otlpReceiver{}
	up := &traceUpstream{}
	p := startProxy(t, tracedConfig(startOTLPHTTP(t, recv), "sample_ratio: 0", "http://"+startHTTPUpstream(t, up).addr())+
		"trusted_proxies: [127.0.0.1/32]\n")
	tracedGet(t, p.addr, "")
	tp, _ := up.last()
	if _, _, flags := splitTraceparent(t, tp); flags != "00" {
		t.Errorf("upstream traceparent %s; want flags 00 (not sampled)", tp)
	}
	tracedGet(t, p.addr, clientParent)
	tp, _ = up.last()
	if id, _, flags := splitTraceparent(t, tp); id != clientTraceID || flags != "01" {
		t.Errorf("upstream traceparent %s; want the trusted client's trace, sampled", tp)
	}
	p.stop(t)
	spans, _, _ := recv.snapshot()
	for _, s := range spans {
		if hex.EncodeToString(s.GetTraceId()) != clientTraceID {
			t.Errorf("span %q of trace %x recorded; want only the trusted client's sampled trace", s.GetName(), s.GetTraceId())
		}
	}
	if len(spans) != 2 {
		t.Errorf("got %d spans; want 2 (the server span and its try, of the client's trace)", len(spans))
	}
}

// TestE2ETracingReload: a reload that changes the tracing section replaces
// the exporter (spans go to the new receiver; the old one got the earlier
// request's, flushed), one that removes it stops tracing and lets the
// client's traceparent through untouched, as without tracing.
func TestE2ETracingReload(t *testing.T) {
	first, second := &otlpReceiver{}, &otlpReceiver{}
	firstAddr, secondAddr := startOTLPHTTP(t, first), startOTLPGRPC(t, second)
	up := &traceUpstream{}
	target := "http://" + startHTTPUpstream(t, up).addr()
	p := startProxy(t, tracedConfig(firstAddr, "", target))
	reload := func(yaml string) {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if changed, err := p.srv.Reload(cfg); err != nil || !changed {
			t.Fatalf("Reload: changed %v, %v", changed, err)
		}
	}
	tracedGet(t, p.addr, "")
	reload(tracedConfig(secondAddr, "protocol: grpc", target))
	tracedGet(t, p.addr, "")
	secondTP, _ := up.last()
	reload(oneUpstreamConfig(strings.TrimPrefix(target, "http://"), "", "", ""))
	tracedGet(t, p.addr, clientParent)
	if tp, _ := up.last(); tp != clientParent {
		t.Errorf("without tracing the upstream saw traceparent %q; want the client's %q untouched", tp, clientParent)
	}
	// The replaced exporter flushes when the old configuration retires
	// (a minute after the reload) or at shutdown: stop the proxy.
	p.stop(t)
	if !waitFor(e2eTimeout, func() bool { s, _, _ := first.snapshot(); return len(s) == 2 }) {
		s, _, _ := first.snapshot()
		t.Errorf("first receiver got %d spans; want the first request's 2", len(s))
	}
	spans, _, _ := second.snapshot()
	if len(spans) != 2 {
		t.Fatalf("second receiver got %d spans; want the second request's 2", len(spans))
	}
	id, _, _ := splitTraceparent(t, secondTP)
	if got := hex.EncodeToString(spans[0].GetTraceId()); got != id {
		t.Errorf("second receiver's trace %s; want the second request's %s", got, id)
	}
}

// TestE2ETracingExportErrors: a receiver that refuses the exports is
// counted in rampart_trace_export_errors_total (the batcher exports every
// 5 s), and requests are served all the same.
func TestE2ETracingExportErrors(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusBadRequest) // not retried by the exporter
	}))
	t.Cleanup(refusing.Close)
	up := &traceUpstream{}
	p := startProxy(t, tracedConfig(refusing.Listener.Addr().String(), "", "http://"+startHTTPUpstream(t, up).addr())+
		"admin: {address: 127.0.0.1:0}\n")
	tracedGet(t, p.addr, "")
	errorsCounted := func() float64 {
		mfs, err := p.srv.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "rampart_trace_export_errors_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no rampart_trace_export_errors_total")
		return 0
	}
	if got := errorsCounted(); got != 0 {
		t.Fatalf("export errors before any export: %v; want 0", got)
	}
	if !waitFor(3*e2eTimeout/2, func() bool { return errorsCounted() > 0 }) {
		t.Errorf("rampart_trace_export_errors_total stayed 0 with a receiver answering 400")
	}
}
