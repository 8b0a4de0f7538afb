package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
)

// transport sends requests to one target over pooled keep-alive connections.
// It is built once per target address and timeout settings, and kept across
// snapshots while those stay the same, so pooled connections survive reloads.
type transport struct {
	// key identifies the settings the transport was built with.
	key    transportKey
	client *fasthttp.HostClient // the connection pool
	pool   connPool
	// hostPort is the dialed address, for logs.
	hostPort string
	// tlsHost is the host a wss/https upgrade dials with TLS ("" for plain).
	tlsConfig *tls.Config
	connect   time.Duration
	read      time.Duration
	write     time.Duration
}

type transportKey struct {
	addr                 string // scheme://host:port
	connect, read, write time.Duration
	idle                 time.Duration
	maxConns             int
	tls                  string // the upstream's tls settings, printed: a change makes a new transport
}

// dialError marks a failure to connect to a target, answered with 502.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// targetAddr splits a validated target URL into its identity
// (scheme://host:port), its host:port and whether it uses TLS.
func targetAddr(raw string) (id, hostPort string, isTLS bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", false, err
	}
	isTLS = u.Scheme == "https"
	port := u.Port()
	if port == "" {
		port = "80"
		if isTLS {
			port = "443"
		}
	}
	hostPort = net.JoinHostPort(u.Hostname(), port)
	return u.Scheme + "://" + hostPort, hostPort, isTLS, nil
}

func newTransport(key transportKey, hostPort string, isTLS bool, tlsConf *tls.Config) *transport {
	t := &transport{
		key:       key,
		hostPort:  hostPort,
		connect:   key.connect,
		read:      key.read,
		write:     key.write,
		tlsConfig: tlsConf,
	}
	t.client = &fasthttp.HostClient{
		Addr:      hostPort,
		IsTLS:     isTLS,
		TLSConfig: tlsConf,
		Dial:      t.dial,
		MaxConns:  key.maxConns,
		// A request waits this long for a free connection before 503.
		MaxConnWaitTimeout:  key.connect,
		MaxIdleConnDuration: key.idle,
		// The HostClient serves as a connection pool only (see hostPool).
		// The read timeout is applied per read by timeoutConn, so that it
		// bounds the wait for each byte (as nginx's proxy_read_timeout does)
		// rather than a whole streamed body.
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  32 << 10,
		ConnPoolStrategy: fasthttp.LIFO,
	}
	hc := t.client
	t.pool = newHostPool(hc, hc.AcquireConn, hc.ReleaseConn, hc.CloseConn, key.write)
	return t
}

// dial connects to the target within the connect timeout. Errors are marked
// as dialError so that the handler answers 502 rather than 504.
func (t *transport) dial(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, t.connect)
	if err != nil {
		return nil, &dialError{err: err}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if t.read <= 0 && t.write <= 0 {
		return c, nil
	}
	return &timeoutConn{Conn: c, read: t.read, write: t.write}, nil
}

// timeoutConn bounds each Read by the read timeout, from the moment the read
// starts: a target that stops sending for that long is timed out, however long
// the whole response takes. Moving a deadline costs a timer update in the
// runtime, so it is moved only when less than nine tenths of the timeout is
// left. A deadline kept that way may fall before the read's own end (up to a
// tenth of the timeout early): when it fires then, the deadline is moved to
// the read's end and the read goes on, so a timeout never fires before its
// time (issue 23: a 10 s read timeout answered 504 after 9.09 s).
type timeoutConn struct {
	net.Conn
	read, write time.Duration
	rdl, wdl    time.Time // the deadlines last set
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	if c.read <= 0 {
		return c.Conn.Read(p)
	}
	start := time.Now()
	if moveDeadline(&c.rdl, start, c.read) {
		if err := c.Conn.SetReadDeadline(c.rdl); err != nil {
			return 0, err
		}
	}
	for {
		n, err := c.Conn.Read(p)
		if n > 0 || err == nil || !isTimeout(err) || !c.early(&c.rdl, start, c.read, c.Conn.SetReadDeadline) {
			return n, err
		}
	}
}

// Write bounds each write by the write timeout, the same way.
func (c *timeoutConn) Write(p []byte) (int, error) {
	if c.write <= 0 {
		return c.Conn.Write(p)
	}
	start := time.Now()
	if moveDeadline(&c.wdl, start, c.write) {
		if err := c.Conn.SetWriteDeadline(c.wdl); err != nil {
			return 0, err
		}
	}
	written := 0
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		if err == nil || !isTimeout(err) || !c.early(&c.wdl, start, c.write, c.Conn.SetWriteDeadline) {
			return written, err
		}
	}
}

// early reports whether a deadline that fired came before start+d, the end
// the operation begun at start is owed; if so it moves the deadline there
// (set is SetReadDeadline or SetWriteDeadline), and the operation goes on.
func (c *timeoutConn) early(last *time.Time, start time.Time, d time.Duration, set func(time.Time) error) bool {
	end := start.Add(d)
	if !time.Now().Before(end) {
		return false
	}
	*last = end
	return set(end) == nil
}

// moveDeadline sets *last to now+d and reports true when less than nine
// tenths of d is left of the deadline *last; otherwise the deadline stays
// (moving one costs a runtime timer update) and it reports false.
func moveDeadline(last *time.Time, now time.Time, d time.Duration) bool {
	if last.Sub(now) >= d-d/10 {
		return false
	}
	*last = now.Add(d)
	return true
}

// isTimeout reports whether err is a timeout waiting for the target.
func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// transportFor returns the transport of a target, reusing old when it has the
// same key.
func transportFor(old map[transportKey]*transport, up *config.Upstream, rawURL string) (*transport, error) {
	id, hostPort, isTLS, err := targetAddr(rawURL)
	if err != nil {
		return nil, err
	}
	key := transportKey{
		addr:     id,
		connect:  up.Timeouts.Connect.Std(),
		read:     up.Timeouts.Read.Std(),
		write:    up.Timeouts.Write.Std(),
		idle:     up.Timeouts.Idle.Std(),
		maxConns: up.MaxConnsPerTarget,
	}
	if isTLS && up.TLS != nil {
		key.tls = fmt.Sprintf("%+v", *up.TLS)
	}
	if t, ok := old[key]; ok {
		return t, nil
	}
	var tlsConf *tls.Config
	if isTLS {
		if tlsConf, err = upstreamTLS(hostPort, up.TLS); err != nil {
			return nil, err
		}
	}
	return newTransport(key, hostPort, isTLS, tlsConf), nil
}

// upstreamTLS is the client side of TLS to an https:// target: verified
// against the system roots or the upstream's ca_file, the target's host as
// SNI (unless server_name says otherwise), an optional client certificate.
// Verification is off only when insecure_skip_verify is written.
func upstreamTLS(hostPort string, t *config.UpstreamTLS) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(hostPort)
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t == nil {
		return conf, nil
	}
	if t.ServerName != "" {
		conf.ServerName = t.ServerName
	}
	conf.InsecureSkipVerify = t.InsecureSkipVerify
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s: no PEM certificate in it", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file %s and key_file %s: %w", t.CertFile, t.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// connAlive reports whether a pooled connection still looks usable: the
// target has neither closed it nor sent anything unasked. It peeks without
// blocking, whatever the connection's read deadline (one idle for longer
// than the read timeout has a deadline long past, on which a raw read fails
// at once without looking); connections it cannot look into (TLS) count as
// alive.
func connAlive(c net.Conn) bool {
	if tc, ok := c.(*timeoutConn); ok {
		c = tc.Conn
	}
	t, ok := c.(*net.TCPConn)
	if !ok {
		return true
	}
	rc, err := t.SyscallConn()
	if err != nil {
		return true
	}
	alive := true
	_ = rc.Control(func(fd uintptr) {
		// Nothing to read: idle as it should be. Anything else: closed,
		// data nobody asked for, or an error.
		var b [1]byte
		alive = nothingToRead(fd, &b)
	})
	return alive
}
