package config

import (
	"reflect"
	"testing"
	"time"
)

// TestTracingDefaults: a tracing section with an endpoint only gets the
// documented defaults; one written out keeps its values; access_log format
// defaults to json.
func TestTracingDefaults(t *testing.T) {
	base := "listeners:\n  web: {address: \":8080\"}\nupstreams:\n  app: {targets: [{url: \"http://a:1\"}]}\nroutes:\n  - upstream: app\n"
	tests := []struct {
		name, yaml string
		want       Tracing
	}{
		{"defaults", "tracing:\n  endpoint: otel:4318\n", Tracing{Endpoint: "otel:4318", Protocol: TraceHTTP,
			SampleRatio: new(1.0), ServiceName: "rampart", Timeout: Duration(10 * time.Second)}},
		{"written out", "tracing:\n  endpoint: https://otel:4317\n  protocol: grpc\n  sample_ratio: 0\n  service_name: edge\n  headers: {x-key: k}\n  timeout: 2s\n",
			Tracing{Endpoint: "https://otel:4317", Protocol: TraceGRPC, SampleRatio: new(0.0), ServiceName: "edge",
				Headers: map[string]string{"x-key": "k"}, Timeout: Duration(2 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(base+tt.yaml), "t.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*c.Tracing, tt.want) {
				t.Errorf("got %+v (ratio %v); want %+v (ratio %v)", *c.Tracing, *c.Tracing.SampleRatio, tt.want, *tt.want.SampleRatio)
			}
			if c.AccessLog.Format != AccessLogJSON {
				t.Errorf("access_log.format %q; want json", c.AccessLog.Format)
			}
		})
	}
}
