package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/wire/http1"
	"github.com/rampart-proxy/rampart/wire/http2"
)

// transport sends requests to one target over pooled keep-alive connections.
// It is built once per target address and timeout settings, and kept across
// snapshots while those stay the same, so pooled connections survive reloads.
type transport struct {
	// key identifies the settings the transport was built with.
	key transportKey
	// client is the upstream exchange; h1 is the same client when the
	// target speaks HTTP/1.1, which WebSocket upgrades need. Both are nil
	// when the upstream speaks HTTP/2 (protocol: http2): h2 is its client.
	client upstreamClient
	h1     *http1.Client
	h2     *http2.Client
	// hostPort is the dialed address, for logs.
	hostPort string
	// tlsConfig is the client side of TLS to the target (nil: plain).
	tlsConfig *tls.Config
}

// upstreamClient sends one request to one target: the wire toward an
// HTTP/1.1 upstream (http1.Client). HTTP/2 upstreams have their own client
// (transport.h2), whose exchange streams both ways at once.
type upstreamClient interface {
	// RoundTrip writes req and reads the response header into resp; body
	// streams the rest (nil when it was read whole). See
	// http1.Client.RoundTrip for the flags and the errors.
	RoundTrip(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool) (body io.ReadCloser, resent int, err error)
	// RoundTripTimed is RoundTrip that sets *connect (when not nil) to the
	// wait for a connection (http1.Client.RoundTripTimed).
	RoundTripTimed(req *fasthttp.Request, resp *fasthttp.Response, replayable, idempotent bool, connect *time.Duration) (body io.ReadCloser, resent int, err error)
}

type transportKey struct {
	addr                 string // scheme://host:port
	connect, read, write time.Duration
	idle                 time.Duration
	maxConns             int
	tls                  string // the upstream's tls settings, printed: a change makes a new transport
	h2                   bool   // protocol: http2
}

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

func newTransport(key transportKey, hostPort string, tlsConf *tls.Config, workers *http1.Workers) (*transport, error) {
	if key.h2 {
		c, err := http2.NewClient(key.addr, http2.ClientOptions{TLS: tlsConf, Connect: key.connect,
			Read: key.read, Write: key.write, Idle: key.idle})
		if err != nil {
			return nil, err
		}
		return &transport{key: key, h2: c, hostPort: hostPort, tlsConfig: tlsConf}, nil
	}
	c := http1.NewClient(http1.ClientConfig{Addr: hostPort, TLS: tlsConf, Connect: key.connect,
		Read: key.read, Write: key.write, Idle: key.idle, MaxConns: key.maxConns, Workers: workers})
	return &transport{key: key, client: c, h1: c, hostPort: hostPort, tlsConfig: tlsConf}, nil
}

// closeIdle closes the transport's idle HTTP/2 connections (a reload
// dropped its target); streams in flight finish. HTTP/1.1 connections are
// left to their idle timeout.
func (t *transport) closeIdle() {
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
	}
}

// transportFor returns the transport of a target, reusing old when it has the
// same key.
func transportFor(old map[transportKey]*transport, up *config.Upstream, rawURL string, workers *http1.Workers) (*transport, error) {
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
		h2:       up.Protocol == config.UpstreamHTTP2,
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
	return newTransport(key, hostPort, tlsConf, workers)
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
