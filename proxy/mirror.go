package proxy

import (
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/balancer"
	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/metrics"
)

// mirror copies a share of a route's requests to another upstream. The
// copy is made on the request's path (its header and a body read whole,
// up to max_body_size), handed to the server's mirror queue without
// waiting, and sent by a mirror worker; its answer is read and discarded.
// A full queue drops the copy: a slow or dead mirror costs the client
// nothing but the copy.
type mirror struct {
	pool    *pool
	all     bool   // percent 100
	below   uint64 // a request is copied when rnd() < below
	maxBody int
	metrics *metrics.MirrorMetrics
	q       *mirrorQueue
	rnd     func() uint64 // rand.Uint64; tests inject their own
}

func (s *Server) buildMirror(e *edgeBuild, r *route) error {
	mc := r.cfg.Mirror
	if mc == nil {
		return nil
	}
	m := &mirror{pool: e.snap.pools[mc.Upstream], maxBody: int(mc.MaxBodySize),
		metrics: s.metrics.Mirror(r.name), q: &s.mirrors, rnd: rand.Uint64}
	if m.maxBody <= 0 {
		m.maxBody = config.DefaultMirrorMaxBodySize
	}
	switch {
	case mc.Percent >= 100:
		m.all = true
	case mc.Percent > 0:
		m.below = uint64(mc.Percent / 100 * math.MaxUint64)
	}
	if m.pool == nil || (!m.all && m.below == 0) {
		return nil // validated: an upstream that exists; percent 0 copies nothing
	}
	r.mirror = m
	return nil
}

// chosen draws whether this request is copied.
func (m *mirror) chosen() bool {
	return m.all || m.rnd() < m.below
}

// mirrorJob is one copy on its way to a mirror target.
type mirrorJob struct {
	req     fasthttp.Request
	resp    fasthttp.Response
	p       *pool
	t       *balancer.Target
	metrics *metrics.MirrorMetrics
}

var mirrorJobs = sync.Pool{New: func() any { return new(mirrorJob) }}

func releaseMirrorJob(j *mirrorJob) {
	j.req.Reset()
	j.resp.Reset()
	j.p, j.t, j.metrics = nil, nil, nil
	mirrorJobs.Put(j)
}

// mirrorQueue is the server's queue of copies and the workers that send
// them (config.MirrorQueue, config.MirrorWorkers). It outlives reloads:
// each copy carries the pool of the snapshot it was made under. The
// workers start with the first copy and end at shutdown.
type mirrorQueue struct {
	once sync.Once
	jobs chan *mirrorJob
}

func (q *mirrorQueue) start(stop <-chan struct{}) {
	q.once.Do(func() {
		q.jobs = make(chan *mirrorJob, config.MirrorQueue)
		for range config.MirrorWorkers {
			go q.work(stop)
		}
	})
}

func (q *mirrorQueue) work(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case j := <-q.jobs:
			j.send()
			releaseMirrorJob(j)
		}
	}
}

// send sends the copy to its target and discards the answer. The target's
// passive health and metrics count the exchange as any other.
func (j *mirrorJob) send() {
	p, t := j.p, j.t
	var start time.Time
	if p.latency {
		start = time.Now()
	}
	t.State.Acquire()
	body, _, err := p.transports[t.Index].client.RoundTrip(&j.req, &j.resp, true, isIdempotent(j.req.Header.Method()))
	if body != nil {
		_, _ = io.Copy(io.Discard, body) // bounded by the upstream's timeouts
		_ = body.Close()
	}
	t.State.Release()
	status := j.resp.StatusCode()
	p.report(t, err != nil || status >= 500, start)
	if err != nil {
		p.targetMetrics[t.Index].Observe(0)
		j.metrics.Record(metrics.MirrorFailed)
		return
	}
	p.targetMetrics[t.Index].Observe(status)
	j.metrics.Record(metrics.MirrorSent)
}

// mirrorRequest copies the request, when it is among those chosen, as the
// upstream will receive it (rewritten, with the proxy's forwarding fields
// and the route's header edits), and queues the copy. A body that streams
// (beyond what was read whole, or chunked) or exceeds max_body_size, and a
// WebSocket upgrade, are not mirrored: counted as skipped.
func (x *exchange) mirrorRequest() {
	m := x.rt.mirror
	if !m.chosen() {
		return
	}
	ctx := x.ctx
	req := &ctx.Request
	if req.IsBodyStream() || len(req.Body()) > m.maxBody || isWebSocketUpgrade(&req.Header) {
		m.metrics.Record(metrics.MirrorSkipped)
		return
	}
	t := m.pool.pick(ctx, x, 0)
	if t == nil {
		m.metrics.Record(metrics.MirrorFailed)
		return
	}
	m.q.start(x.l.srv.stop)
	j := mirrorJobs.Get().(*mirrorJob)
	req.CopyTo(&j.req)
	j.p, j.t, j.metrics = m.pool, t, m.metrics
	host := req.Header.Host()
	if uri := req.Header.RequestURI(); len(uri) > 0 && uri[0] != '/' {
		host = ctx.Host() // absolute-form: the target's host wins over Host
	}
	if len(host) == 0 {
		j.req.Header.SetHost(m.pool.transports[t.Index].hostPort)
	}
	prepareRequest(&j.req, x, host, forwardFlags(x.lr, isTrusted(x.st.Peer(), x.snap.trusted), false))
	x.xff = x.xff[:0] // forward prepares the client's own request from scratch
	select {
	case m.q.jobs <- j:
	default:
		m.metrics.Record(metrics.MirrorDropped)
		releaseMirrorJob(j)
	}
}
