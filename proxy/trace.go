package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
	"github.com/rampart-proxy/rampart/waf"
	"github.com/rampart-proxy/rampart/wire"
)

// tracing is the OpenTelemetry trace pipeline of a configuration: a
// tracer provider with its OTLP exporter and batcher. A reload that keeps
// the tracing section keeps it; one that changes it builds another, and
// the old one is flushed and shut down once its requests are done.
type tracing struct {
	cfg      config.Tracing
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	set      *traceSet // holds it until shut down
	once     sync.Once // guards the shutdown
	err      error     // the shutdown's
}

// traceSet holds the Server's exporters that are not shut down yet: the
// running configuration's, and those of configurations replaced by a reload
// whose shutdown (a minute later) has not come. Shutdown flushes them all.
type traceSet struct {
	mu  sync.Mutex // guards all
	all map[*tracing]struct{}
}

func (s *traceSet) add(t *tracing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all == nil {
		s.all = map[*tracing]struct{}{}
	}
	s.all[t] = struct{}{}
	t.set = s
}

func (s *traceSet) remove(t *tracing) {
	s.mu.Lock()
	delete(s.all, t)
	s.mu.Unlock()
}

// shutdown shuts every exporter down, flushing its spans, within ctx.
func (s *traceSet) shutdown(ctx context.Context) error {
	s.mu.Lock()
	all := make([]*tracing, 0, len(s.all))
	for t := range s.all {
		all = append(all, t)
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range all {
		if err := t.shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// traceContext is W3C Trace Context: traceparent and tracestate.
var traceContext propagation.TraceContext

// The W3C Trace Context fields, which the proxy owns when tracing is on.
const (
	hdrTraceparent = "traceparent"
	hdrTracestate  = "tracestate"
)

// buildTracing returns the tracing of cfg: old's when its settings are
// the same, nil when off. A dry run checks what it can (the CA file) and
// opens nothing.
func (s *Server) buildTracing(cfg *config.Config, old *snapshot, dryRun bool) (*tracing, error) {
	tc := cfg.Tracing
	if tc == nil {
		return nil, nil
	}
	if old != nil && old.tracing != nil && reflect.DeepEqual(old.tracing.cfg, *tc) {
		return old.tracing, nil
	}
	tlsConf, err := traceTLS(tc)
	if err != nil {
		return nil, err
	}
	if dryRun {
		return nil, nil
	}
	exp, err := newTraceExporter(tc, tlsConf)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	ratio := config.DefaultTraceSampleRatio
	if tc.SampleRatio != nil {
		ratio = *tc.SampleRatio
	}
	name := tc.ServiceName
	if name == "" {
		name = config.DefaultTraceServiceName
	}
	setTraceErrorLog(s.log, s.metrics)
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
	)
	t := &tracing{cfg: *tc, provider: provider, tracer: provider.Tracer("github.com/rampart-proxy/rampart/proxy")}
	s.traces.add(t)
	return t, nil
}

// traceErrorLog is where the OpenTelemetry SDK's errors (a failed export)
// go: the log and rampart_trace_export_errors_total of the Server that
// last built a tracing section. The SDK has one error handler per process.
var traceErrorLog struct {
	once    sync.Once
	mu      sync.Mutex // guards the fields below
	log     *slog.Logger
	metrics *metrics.Metrics
}

func setTraceErrorLog(log *slog.Logger, m *metrics.Metrics) {
	traceErrorLog.mu.Lock()
	traceErrorLog.log, traceErrorLog.metrics = log, m
	traceErrorLog.mu.Unlock()
	traceErrorLog.once.Do(func() {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			traceErrorLog.mu.Lock()
			l, m := traceErrorLog.log, traceErrorLog.metrics
			traceErrorLog.mu.Unlock()
			m.TraceExportFailed()
			l.Warn("tracing: export failed", "error", err.Error())
		}))
	})
}

// traceTLS is the TLS configuration of an export over TLS: nil for plain
// text (insecure, or an http:// endpoint), else the system's roots or
// ca_file's.
func traceTLS(tc *config.Tracing) (*tls.Config, error) {
	if tc.Insecure || strings.HasPrefix(tc.Endpoint, "http://") {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if tc.CAFile != "" {
		pem, err := os.ReadFile(tc.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tracing: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tracing: ca_file %s: no PEM certificate", tc.CAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// newTraceExporter builds the OTLP exporter tc describes. Nothing is
// dialed until the first export.
func newTraceExporter(tc *config.Tracing, tlsConf *tls.Config) (sdktrace.SpanExporter, error) {
	timeout := tc.Timeout.Std()
	if timeout <= 0 {
		timeout = config.DefaultTraceTimeout
	}
	isURL := strings.Contains(tc.Endpoint, "://")
	ctx := context.Background()
	if tc.Protocol == config.TraceGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithTimeout(timeout), otlptracegrpc.WithHeaders(tc.Headers)}
		if isURL {
			u, err := url.Parse(tc.Endpoint)
			if err != nil {
				return nil, err
			}
			opts = append(opts, otlptracegrpc.WithEndpoint(u.Host))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(tc.Endpoint))
		}
		if tlsConf == nil {
			opts = append(opts, otlptracegrpc.WithInsecure())
		} else {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(tlsConf)))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithTimeout(timeout), otlptracehttp.WithHeaders(tc.Headers)}
	if isURL {
		opts = append(opts, otlptracehttp.WithEndpointURL(tc.Endpoint))
	} else {
		opts = append(opts, otlptracehttp.WithEndpoint(tc.Endpoint))
	}
	if tlsConf == nil {
		opts = append(opts, otlptracehttp.WithInsecure())
	} else {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsConf))
	}
	return otlptracehttp.New(ctx, opts...)
}

// shutdown flushes the spans still batched and stops the exporter. A nil
// t does nothing.
func (t *tracing) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	t.once.Do(func() {
		t.err = t.provider.Shutdown(ctx)
		t.set.remove(t)
	})
	return t.err
}

// traceExchange is a request's tracing state: its server span and the
// context that parents its child spans. All nil when tracing is off, and
// then each step is one nil check.
type traceExchange struct {
	tracer trace.Tracer
	span   trace.Span      // the request's server span; nil: not traced
	ctx    context.Context // holds span
	// recording says the trace is sampled: only then are child spans made.
	recording bool
	try       trace.Span // the upstream try in flight
	waf       trace.Span // the WAF inspection in flight
}

// reset ends what a request left open (a tunnel, an answer that was not
// logged) and clears the state.
func (t *traceExchange) reset() {
	if t.span != nil {
		t.span.End()
	}
	*t = traceExchange{}
}

// headerCarrier reads and writes W3C Trace Context in a fasthttp header.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }
func (c headerCarrier) Keys() []string        { return []string{hdrTraceparent, hdrTracestate} }

// startTrace starts the request's server span: a child of the client's
// traceparent when the client is a trusted proxy (trusted_proxies), else
// the root of a new trace; an untrusted client's traceparent and tracestate
// are not sent on (forwardTrace replaces them).
func (x *exchange) startTrace(tr *tracing) {
	ctx := context.Background()
	h := &x.ctx.Request.Header
	if isTrusted(x.st.Peer(), x.snap.trusted) {
		ctx = traceContext.Extract(ctx, headerCarrier{h})
	}
	ctx, span := tr.tracer.Start(ctx, methodName(h.Method()), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(x.start))
	x.traceX.tracer, x.traceX.span, x.traceX.ctx, x.traceX.recording = tr.tracer, span, ctx, span.IsRecording()
	x.timed = true
	x.http10 = !h.IsHTTP11()
}

// The steps below are small wrappers that the compiler inlines, so that a
// request that is not traced pays one nil check per step, not a call.

// wafBegin starts the WAF inspection's span.
func (t *traceExchange) wafBegin() {
	if t.recording {
		_, t.waf = t.tracer.Start(t.ctx, "waf")
	}
}

// wafEnd ends the WAF inspection's span with its verdict.
func (t *traceExchange) wafEnd(v *waf.Verdict) {
	if t.waf != nil {
		t.endWAF(v)
	}
}

func (t *traceExchange) endWAF(v *waf.Verdict) {
	t.waf.SetAttributes(attribute.String("rampart.waf.verdict", v.Outcome().String()),
		attribute.String("rampart.waf.rules", string(v.AppendRuleIDs(nil, ','))))
	t.waf.End()
	t.waf = nil
}

// tryBegin starts the span of a try of target i, and sends its context to
// the target in traceparent (and tracestate), replacing the client's.
func (x *exchange) tryBegin(i int) {
	if x.traceX.span != nil {
		x.beginTry(i)
	}
}

func (x *exchange) beginTry(i int) {
	t := &x.traceX
	h := &x.ctx.Request.Header
	h.Del(hdrTraceparent)
	h.Del(hdrTracestate)
	sc := t.span.SpanContext()
	if t.recording {
		var span trace.Span
		_, span = t.tracer.Start(t.ctx, methodName(h.Method()), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("rampart.target", x.p.targetNames[i]),
				attribute.String("rampart.upstream", x.p.name), attribute.Int("rampart.try", x.up.tries+1)))
		t.try, sc = span, span.SpanContext()
	}
	// A trace that is not recorded gets no try span: the upstream sees the
	// server span's context, which carries the trace id and the decision.
	x.hdr = appendTraceparent(x.hdr[:0], sc)
	h.SetBytesV(hdrTraceparent, x.hdr)
	if ts := sc.TraceState(); ts.Len() > 0 {
		h.Set(hdrTracestate, ts.String())
	}
}

// appendTraceparent appends sc as a W3C traceparent (version 00) without
// the allocations of the propagator's formatting.
func appendTraceparent(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hexAppend(dst, tid[:])
	dst = append(dst, '-')
	dst = hexAppend(dst, sid[:])
	f := byte(sc.TraceFlags())
	return append(dst, '-', hexDigits[f>>4], hexDigits[f&0xf])
}

func hexAppend(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}

// tryEnd ends the span of the try in flight with its answer, or err.
func (t *traceExchange) tryEnd(status int, err error) {
	if t.try != nil {
		t.endTry(status, err)
	}
}

func (t *traceExchange) endTry(status int, err error) {
	if err != nil {
		t.try.RecordError(err)
		t.try.SetStatus(codes.Error, err.Error())
	} else {
		t.try.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			t.try.SetStatus(codes.Error, "")
		}
	}
	t.try.End()
	t.try = nil
}

// endTrace sets the server span's attributes from the answer and returns
// it to be ended: now (end), or by the relay once the body is through.
func (x *exchange) endTrace() trace.Span {
	if x.traceX.span == nil {
		return nil
	}
	return x.serverSpan()
}

func (x *exchange) serverSpan() trace.Span {
	t := &x.traceX
	span := t.span
	t.span = nil
	if !span.IsRecording() {
		return span
	}
	status := x.ctx.Response.StatusCode()
	h := &x.ctx.Request.Header
	attrs := make([]attribute.KeyValue, 0, 16)
	attrs = append(attrs,
		attribute.String("http.request.method", methodName(h.Method())),
		attribute.String("url.path", string(x.ctx.Path())),
		attribute.String("server.address", string(x.ctx.Host())),
		attribute.String("client.address", string(x.client)),
		attribute.Int("http.response.status_code", status),
		attribute.String("rampart.request_id", string(x.reqID)),
		attribute.String("rampart.listener", x.l.name))
	if x.st.Protocol() == wire.HTTP2 {
		attrs = append(attrs, attribute.String("network.protocol.version", "2"))
	} else if x.http10 {
		attrs = append(attrs, attribute.String("network.protocol.version", "1.0"))
	} else {
		attrs = append(attrs, attribute.String("network.protocol.version", "1.1"))
	}
	if v := tlsVersionName(x.st); v != "" {
		attrs = append(attrs, attribute.String("tls.protocol.version", v))
	}
	if x.rt != nil {
		attrs = append(attrs, attribute.String("http.route", x.rt.name))
		span.SetName(methodName(h.Method()) + " " + x.rt.name)
	}
	if upstream, target := x.names(); upstream != "" {
		attrs = append(attrs, attribute.String("rampart.upstream", upstream), attribute.Int("rampart.upstream.tries", x.up.tries))
		if target != "" {
			attrs = append(attrs, attribute.String("rampart.target", target))
		}
		if x.up.status != 0 {
			attrs = append(attrs, attribute.Int("rampart.upstream.status_code", x.up.status))
		}
	}
	if x.verdict != nil {
		attrs = append(attrs, attribute.String("rampart.waf.verdict", x.verdict.Outcome().String()))
	}
	if c := x.cacheX.status(); c != "" {
		attrs = append(attrs, attribute.String("rampart.cache.status", c))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(status))
	}
	return span
}

// methodName is m as a string, without an allocation for the usual
// methods (a span's name is made before the sampler decides).
func methodName(m []byte) string {
	for _, k := range knownMethods {
		if string(m) == k {
			return k
		}
	}
	return string(m)
}

var knownMethods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// endSpan ends a span handed over by endTrace (nil: none).
func endSpan(span trace.Span) {
	if span != nil {
		span.End()
	}
}
