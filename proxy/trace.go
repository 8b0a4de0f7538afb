package proxy

// traceExchange is a request's tracing state (not built yet).
type traceExchange struct{}

func (t *traceExchange) reset() {}
