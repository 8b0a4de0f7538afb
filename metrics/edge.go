package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-proxy/rampart/compress"
)

// edgeMetrics are the families of issue 21's edge features: compression
// and mirroring, by route.
type edgeMetrics struct {
	compressed *prometheus.CounterVec // route, encoding
	bytesIn    *prometheus.CounterVec // route, encoding
	bytesOut   *prometheus.CounterVec // route, encoding
	mirror     *prometheus.CounterVec // route, result

	compress map[string]*CompressMetrics // guarded by Metrics.mu
	mirrors  map[string]*MirrorMetrics   // guarded by Metrics.mu
}

func (e *edgeMetrics) init() []prometheus.Collector {
	e.compressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "compressed_responses_total",
		Help: "Responses compressed, by route and content coding (gzip, br, zstd).",
	}, []string{"route", "encoding"})
	e.bytesIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "compression_input_bytes_total",
		Help: "Response body bytes before compression, by route and content coding.",
	}, []string{"route", "encoding"})
	e.bytesOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "compression_output_bytes_total",
		Help: "Response body bytes after compression, by route and content coding.",
	}, []string{"route", "encoding"})
	e.mirror = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "mirror_requests_total",
		Help: "Request copies for a route's mirror, by result: sent (the mirror answered), failed (no answer), dropped (the queue was full: the mirror is slow or down), skipped (the body was over max_body_size or streaming).",
	}, []string{"route", "result"})
	e.compress = map[string]*CompressMetrics{}
	e.mirrors = map[string]*MirrorMetrics{}
	return []prometheus.Collector{e.compressed, e.bytesIn, e.bytesOut, e.mirror}
}

// CompressMetrics records one route's compression. A nil *CompressMetrics
// records nothing. It is a compress.Sink.
type CompressMetrics struct {
	responses, in, out [4]prometheus.Counter // by compress.Coding
}

// Compress returns the compression handle of the route, creating it on
// first use.
func (m *Metrics) Compress(route string) *CompressMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.edge.compress[route]; c != nil {
		return c
	}
	c := &CompressMetrics{}
	for _, k := range []compress.Coding{compress.Gzip, compress.Brotli, compress.Zstd} {
		c.responses[k] = m.edge.compressed.WithLabelValues(route, k.String())
		c.in[k] = m.edge.bytesIn.WithLabelValues(route, k.String())
		c.out[k] = m.edge.bytesOut.WithLabelValues(route, k.String())
	}
	m.edge.compress[route] = c
	return c
}

// Compressed records one response compressed with k from in bytes to out.
func (c *CompressMetrics) Compressed(k compress.Coding, in, out int64) {
	if c == nil || int(k) >= len(c.responses) || c.responses[k] == nil {
		return
	}
	c.responses[k].Inc()
	c.in[k].Add(float64(in))
	c.out[k].Add(float64(out))
}

// The results of MirrorMetrics.Record.
const (
	MirrorSent    = iota // the mirror answered (any status)
	MirrorFailed         // no answer: connect error, timeout, no target
	MirrorDropped        // the queue was full
	MirrorSkipped        // the body was too large to copy, or streaming
	numMirrorResults
)

var mirrorResults = [numMirrorResults]string{"sent", "failed", "dropped", "skipped"}

// MirrorMetrics records one route's mirror. A nil *MirrorMetrics records
// nothing.
type MirrorMetrics struct {
	results [numMirrorResults]prometheus.Counter
}

// Mirror returns the mirror handle of the route, creating it on first use.
func (m *Metrics) Mirror(route string) *MirrorMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.edge.mirrors[route]; r != nil {
		return r
	}
	r := &MirrorMetrics{}
	for i, name := range mirrorResults {
		r.results[i] = m.edge.mirror.WithLabelValues(route, name)
	}
	m.edge.mirrors[route] = r
	return r
}

// Record counts one copy with its result (MirrorSent...).
func (r *MirrorMetrics) Record(result int) {
	if r == nil || result < 0 || result >= numMirrorResults {
		return
	}
	r.results[result].Inc()
}

// retainEdge deletes the series of the routes not in keep (RetainRoutes;
// m.mu held).
func (m *Metrics) retainEdge(keep map[string]struct{}) {
	for name := range m.edge.compress {
		if _, ok := keep[name]; !ok {
			delete(m.edge.compress, name)
			l := prometheus.Labels{"route": name}
			m.edge.compressed.DeletePartialMatch(l)
			m.edge.bytesIn.DeletePartialMatch(l)
			m.edge.bytesOut.DeletePartialMatch(l)
		}
	}
	for name := range m.edge.mirrors {
		if _, ok := keep[name]; !ok {
			delete(m.edge.mirrors, name)
			m.edge.mirror.DeletePartialMatch(prometheus.Labels{"route": name})
		}
	}
}
