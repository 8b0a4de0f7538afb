package metrics

import "github.com/prometheus/client_golang/prometheus"

// newTraceErrors is rampart_trace_export_errors_total: the errors the
// OpenTelemetry SDK reported while exporting traces (a batch the receiver
// refused or did not answer in time; spans dropped from a full queue are
// reported with the next export).
func newTraceErrors() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "trace_export_errors_total",
		Help: "Errors reported while exporting OpenTelemetry traces (failed or refused exports).",
	})
}

// TraceExportFailed counts an error of the trace exporter. A nil *Metrics
// counts nothing.
func (m *Metrics) TraceExportFailed() {
	if m != nil {
		m.traceErrors.Inc()
	}
}
