package http2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/rampart-proxy/rampart/config"
	proxytls "github.com/rampart-proxy/rampart/tls"
	"github.com/rampart-proxy/rampart/wire"
)

// Config holds a listener's HTTP/2 limits. A zero field means the
// config.DefaultHTTP2* default of the same name.
type Config struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: the streams
	// one connection may have open at once.
	MaxConcurrentStreams uint32
	// MaxHeaderListSize is SETTINGS_MAX_HEADER_LIST_SIZE: the decoded
	// size of a request's header block (names, values and 32 bytes a
	// field). A larger block gets 431; one that is far larger, or sent
	// in too many CONTINUATION frames, closes the connection.
	MaxHeaderListSize uint32
	// MaxStreamsPerConnection is the number of streams a connection may
	// open in its life; the last one is followed by a graceful GOAWAY, so
	// the client opens a new connection.
	MaxStreamsPerConnection int
	// MaxStreamsPerIP bounds the streams open at once from one client IP
	// address across all its connections; a stream over it gets 429 (a
	// gRPC client RESOURCE_EXHAUSTED).
	MaxStreamsPerIP int
	// MaxResetsPerSecond is the rate of RST_STREAM frames a client may
	// send on a connection (burst: twice the rate); more closes the
	// connection with GOAWAY ENHANCE_YOUR_CALM (rapid reset).
	MaxResetsPerSecond int
	// MaxControlFramesPerSecond is the rate of PING and SETTINGS frames
	// (ACKs excepted) a client may send on a connection (burst: twice the
	// rate); more closes the connection with GOAWAY ENHANCE_YOUR_CALM.
	MaxControlFramesPerSecond int
	// IdleTimeout closes a connection with no open stream for this long
	// with a GOAWAY. Zero means config.DefaultIdleTimeout.
	IdleTimeout time.Duration
	// BodyTimeout bounds each wait for more of a request body (the
	// listener's limits.body_timeout): the pipeline's read then fails
	// with an error wrapping os.ErrDeadlineExceeded. Zero means none.
	BodyTimeout time.Duration
	// SendTimeout closes a connection the client takes no bytes from
	// for this long while there are bytes to send (limits.send_timeout):
	// each write of up to 16 KiB to it must end within it
	// (server_write.go). Zero means none.
	SendTimeout time.Duration
	// Logger gets x/net's connection errors at debug level. Nil means
	// slog.Default().
	Logger *slog.Logger
	// CountError, when set, is called with x/net's name for each HTTP/2
	// protocol error ("conn_PROTOCOL_ERROR_bad_path", ...) and this
	// package's ("conn_ENHANCE_YOUR_CALM_rapid_reset", ...), for metrics.
	CountError func(errType string)
	// Run, when set, runs each stream's pipeline and response on a
	// long-lived goroutine (the HTTP/1.1 wire's worker pool,
	// http1.Workers.Go), whose stack has grown to what a request needs:
	// x/net starts a goroutine per stream, and its stack would grow, by
	// copying, on every request. Nil means x/net's goroutine.
	Run func(fn func())
}

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() Config {
	if cfg.MaxConcurrentStreams == 0 {
		cfg.MaxConcurrentStreams = config.DefaultHTTP2MaxConcurrentStreams
	}
	if cfg.MaxHeaderListSize == 0 {
		cfg.MaxHeaderListSize = config.DefaultHTTP2MaxHeaderListSize
	}
	if cfg.MaxStreamsPerConnection == 0 {
		cfg.MaxStreamsPerConnection = config.DefaultHTTP2MaxStreamsPerConnection
	}
	if cfg.MaxStreamsPerIP == 0 {
		cfg.MaxStreamsPerIP = config.DefaultHTTP2MaxStreamsPerIP
	}
	if cfg.MaxResetsPerSecond == 0 {
		cfg.MaxResetsPerSecond = config.DefaultHTTP2MaxResetsPerSecond
	}
	if cfg.MaxControlFramesPerSecond == 0 {
		cfg.MaxControlFramesPerSecond = config.DefaultHTTP2MaxControlFramesPerSecond
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = config.DefaultIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// headerListOverhead is what x/net adds to http.Server.MaxHeaderBytes to
// get the SETTINGS_MAX_HEADER_LIST_SIZE it advertises (ten fields of 32
// bytes); MaxHeaderBytes is set that much lower so the advertised value is
// Config.MaxHeaderListSize.
const headerListOverhead = 10 * 32

// Server serves HTTP/2 connections and hands their streams to a
// wire.Handler. One Server serves one listener; its methods are safe for
// concurrent use.
type Server struct {
	h   wire.Handler
	cfg Config
	h2  *http2.Server
	hs  *http.Server // x/net's base configuration; never serves

	mu      sync.Mutex // guards the fields below
	conns   map[*conn]struct{}
	ips     map[netip.Addr]*ipStreams
	closing bool
	drained chan struct{} // closed when closing and conns is empty
}

// ipStreams counts the streams one client IP address has open.
type ipStreams struct {
	conns   int          // connections holding this entry; guarded by Server.mu
	streams atomic.Int32 // open streams over all of them
}

// New returns a Server that passes each stream to h.
func New(h wire.Handler, cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		h:     h,
		cfg:   cfg,
		conns: make(map[*conn]struct{}),
		ips:   make(map[netip.Addr]*ipStreams),
	}
	maxHeaderBytes := int(cfg.MaxHeaderListSize) - headerListOverhead
	if maxHeaderBytes < 1 {
		maxHeaderBytes = 1
	}
	s.hs = &http.Server{
		MaxHeaderBytes: maxHeaderBytes,
		ErrorLog:       log.New(logWriter{cfg.Logger}, "", 0),
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: int(cfg.MaxConcurrentStreams),
			// RFC 9113's initial value, which nginx keeps too; x/net
			// would announce 1 MiB, and a frame is read whole.
			MaxReadFrameSize: 16 << 10,
			WriteByteTimeout: cfg.SendTimeout,
			CountError:       cfg.CountError,
		},
	}
	s.h2 = &http2.Server{IdleTimeout: cfg.IdleTimeout}
	return s
}

// logWriter passes x/net's log lines to slog at debug level: they are
// about one client's connection (a protocol error, a lost PING), not
// about Rampart.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if n := len(p); n > 0 && p[n-1] == '\n' {
		p = p[:n-1]
	}
	w.l.Debug("http2", "message", string(p))
	return len(p), nil
}

// ErrServerClosed is returned by ServeConn after Shutdown.
var ErrServerClosed = errors.New("http2: server closed")

// ServeConn serves HTTP/2 on c until the connection ends, then closes it.
// c is either a TLS connection (a *tls.Conn, or any connection with its
// ConnectionState method) whose handshake is done and whose ALPN chose
// "h2", or a cleartext connection on which the client speaks HTTP/2 with
// prior knowledge (h2c). buffered holds the bytes already read from c, the
// client preface or part of it first; they are read again before c.
func (s *Server) ServeConn(c net.Conn, buffered []byte) error {
	cn := s.newConn(c, buffered)
	if cn == nil {
		_ = c.Close()
		return ErrServerClosed
	}
	defer s.forget(cn)
	var nc net.Conn = cn.fc
	if cs, ok := c.(connectionStater); ok {
		nc = tlsFrameConn{cn.fc, cs}
	}
	s.h2.ServeConn(nc, &http2.ServeConnOpts{BaseConfig: s.hs, Handler: cn})
	return nil
}

// connectionStater is a TLS connection: a *tls.Conn, or a listener's own
// type around one.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// conn is one HTTP/2 connection: what its streams know of it.
type conn struct {
	s       *Server
	nc      net.Conn // as accepted: the TLS connection for TLS
	fc      *frameConn
	peer    netip.Addr
	tls     bool
	tlsVer  uint16 // the negotiated TLS version; 0 without TLS
	subject []byte
	ip      *ipStreams
}

// newConn registers a connection, or returns nil after Shutdown.
func (s *Server) newConn(c net.Conn, buffered []byte) *conn {
	cn := &conn{s: s, nc: c}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		cn.peer = ap.Addr().Unmap()
	}
	if tc, ok := c.(connectionStater); ok {
		cn.tls = true
		cs := tc.ConnectionState()
		cn.tlsVer = cs.Version
		if subj, ok := proxytls.ClientSubject(&cs); ok {
			cn.subject = []byte(subj)
		}
	}
	cn.fc = newFrameConn(c, buffered, &s.cfg)
	cn.fc.countError = s.countError
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil
	}
	s.conns[cn] = struct{}{}
	e := s.ips[cn.peer]
	if e == nil {
		e = &ipStreams{}
		s.ips[cn.peer] = e
	}
	e.conns++
	cn.ip = e
	return cn
}

// forget unregisters a connection that has ended.
func (s *Server) forget(cn *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, cn)
	if cn.ip.conns--; cn.ip.conns == 0 {
		delete(s.ips, cn.peer)
	}
	if s.closing && len(s.conns) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// Shutdown sends a GOAWAY on every connection, so clients open no new
// stream on it, lets the streams in flight finish, and returns once every
// connection has closed (x/net closes one a second after its last stream).
// When ctx ends first, it closes the connections left and returns
// ctx.Err(). ServeConn refuses connections from the moment Shutdown is
// called.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return nil
	}
	drained := s.drained
	if drained == nil {
		drained = make(chan struct{})
		s.drained = drained
	}
	conns := make([]*conn, 0, len(s.conns))
	for cn := range s.conns {
		conns = append(conns, cn)
	}
	s.mu.Unlock()
	for _, cn := range conns {
		cn.fc.goAway()
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for cn := range s.conns {
		_ = cn.nc.Close()
	}
	s.mu.Unlock()
	return fmt.Errorf("http2: shutdown: %w", ctx.Err())
}

// countError reports one of this package's protocol errors like x/net
// reports its own.
func (s *Server) countError(name string) {
	if f := s.cfg.CountError; f != nil {
		f(name)
	}
}

// ConfigFrom returns the Config of a listener whose defaults have been
// applied (config.Config.ApplyDefaults).
func ConfigFrom(l *config.Listener) Config {
	h := &l.HTTP2
	return Config{
		MaxConcurrentStreams:      uint32(h.MaxConcurrentStreams),
		MaxHeaderListSize:         uint32(h.MaxHeaderListSize),
		MaxStreamsPerConnection:   h.MaxStreamsPerConnection,
		MaxStreamsPerIP:           h.MaxStreamsPerIP,
		MaxResetsPerSecond:        h.MaxResetsPerSecond,
		MaxControlFramesPerSecond: h.MaxControlFramesPerSecond,
		IdleTimeout:               time.Duration(l.Limits.IdleTimeout),
		BodyTimeout:               time.Duration(l.Limits.BodyTimeout.Or(0)),
		SendTimeout:               time.Duration(l.Limits.SendTimeout.Or(0)),
	}
}
