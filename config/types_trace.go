package config

// Tracing exports OpenTelemetry traces (issue 23).
type Tracing struct {
	// Endpoint is the OTLP receiver.
	Endpoint string `yaml:"endpoint"`
	// Protocol is the OTLP transport: http or grpc.
	Protocol string `yaml:"protocol"`
	// SampleRatio is the share of new traces sampled, 0 to 1.
	SampleRatio float64 `yaml:"sample_ratio"`
}
