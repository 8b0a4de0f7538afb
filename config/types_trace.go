package config

import "time"

// Tracing exports OpenTelemetry traces (docs/tracing.md): one server span
// per request, with a child span for the WAF's inspection and one for each
// try of a target, sent over OTLP. W3C traceparent and tracestate are
// continued from trusted clients (trusted_proxies) and sent to upstreams.
// Omitted: off, at no cost per request.
type Tracing struct {
	// Endpoint is the OTLP receiver: host:port (the collector's usual
	// ports are 4318 for http and 4317 for grpc), or a URL
	// (http://host:4318/v1/traces for protocol http, whose path is then
	// used as it is; https://host:4317 for grpc). Required. With a URL its
	// scheme decides TLS and Insecure must not be set.
	Endpoint string `yaml:"endpoint"`
	// Protocol is the OTLP transport: http (protobuf over HTTP, path
	// /v1/traces) or grpc. Default DefaultTraceProtocol.
	Protocol string `yaml:"protocol"`
	// SampleRatio is the share of new traces recorded, from 0 to 1. A
	// trace continued from a trusted client keeps the client's decision
	// (its traceparent's sampled flag). Default DefaultTraceSampleRatio
	// (every trace); 0 records none of Rampart's own.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans' resource. Default
	// DefaultTraceServiceName.
	ServiceName string `yaml:"service_name"`
	// Headers are sent with each export, such as a vendor's API key. A
	// secret: write values as ${NAME} to read them from the environment;
	// the admin API redacts them.
	Headers map[string]string `yaml:"headers" redact:"true"`
	// Insecure sends to a host:port Endpoint in plain text (no TLS), as
	// to a collector on the same host or pod. False (the default): TLS,
	// verified against the system's roots or CAFile.
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM bundle that verifies the receiver's certificate in
	// place of the system's roots. Empty: the system's.
	CAFile string `yaml:"ca_file"`
	// Timeout bounds one export (a batch of spans). Default
	// DefaultTraceTimeout.
	Timeout Duration `yaml:"timeout"`
}

// Trace protocols (Tracing.Protocol).
const (
	TraceHTTP = "http"
	TraceGRPC = "grpc"
)

// Tracing defaults.
const (
	DefaultTraceProtocol    = TraceHTTP
	DefaultTraceSampleRatio = 1.0
	DefaultTraceServiceName = "rampart"
	DefaultTraceTimeout     = 10 * time.Second
)

// applyDefaults fills the tracing section.
func (t *Tracing) applyDefaults() {
	orDefault(&t.Protocol, DefaultTraceProtocol)
	orDefaultPtr(&t.SampleRatio, DefaultTraceSampleRatio)
	orDefault(&t.ServiceName, DefaultTraceServiceName)
	orDefault(&t.Timeout, Duration(DefaultTraceTimeout))
}
