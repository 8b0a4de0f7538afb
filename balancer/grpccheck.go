package balancer

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	xhttp2 "golang.org/x/net/http2"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rampart-proxy/rampart/config"
)

// The gRPC health check (type grpc): one unary call of the gRPC health
// protocol, grpc.health.v1.Health/Check, over HTTP/2 on a fresh
// connection (h2c with prior knowledge to an http:// target, TLS with h2
// by ALPN to an https:// one). The probe passes when the call ends with
// grpc-status 0 and the answer says SERVING; NOT_SERVING, UNKNOWN,
// SERVICE_UNKNOWN, any other grpc-status (UNIMPLEMENTED from a server
// without the health service) and any failure to talk fail it.
//
// The two messages are built and read with protowire rather than grpc-go's
// generated types and client: a request is one optional string, an answer
// one enum, and grpc-go would add its whole client to the binary for it.

// grpcHealthPath is the health protocol's method.
const grpcHealthPath = "/grpc.health.v1.Health/Check"

// servingStatus is grpc.health.v1.HealthCheckResponse.ServingStatus.
type servingStatus uint64

const (
	statusUnknown servingStatus = iota
	statusServing
	statusNotServing
	statusServiceUnknown
)

func (s servingStatus) String() string {
	switch s {
	case statusUnknown:
		return "UNKNOWN"
	case statusServing:
		return "SERVING"
	case statusNotServing:
		return "NOT_SERVING"
	case statusServiceUnknown:
		return "SERVICE_UNKNOWN"
	}
	return fmt.Sprintf("status %d", uint64(s))
}

// errNotServing is wrapped by a probe whose answer was not SERVING.
var errNotServing = errors.New("balancer: gRPC health check: not serving")

// grpcCheck probes targets with the gRPC health protocol.
type grpcCheck struct {
	tr      *xhttp2.Transport // builds client connections; never dials
	tls     *tls.Config       // for https:// targets, offering h2
	host    string            // :authority, when set
	request []byte            // the framed HealthCheckRequest
}

func newGRPCCheck(hc *config.HealthCheck, tlsConf *tls.Config) *grpcCheck {
	g := &grpcCheck{
		tr:   &xhttp2.Transport{AllowHTTP: true, DisableCompression: true},
		host: hc.Host,
	}
	if tlsConf != nil {
		g.tls = tlsConf.Clone()
	} else {
		g.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	g.tls.NextProtos = []string{xhttp2.NextProtoTLS}
	// HealthCheckRequest{service = 1}: empty for the server as a whole.
	var msg []byte
	if hc.Service != "" {
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, hc.Service)
	}
	g.request = binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))) // uncompressed, length
	g.request = append(g.request, msg...)
	return g
}

// probe calls Check on the target at rawURL (scheme://host:port +
// grpcHealthPath) within ctx; nil means SERVING.
func (g *grpcCheck) probe(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	conn, err := g.dial(ctx, u)
	if err != nil {
		return err
	}
	cc, err := g.tr.NewClientConn(conn)
	if err != nil {
		_ = conn.Close()
		return err
	}
	defer cc.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(g.request))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(g.request))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", "rampart-health-check")
	if g.host != "" {
		req.Host = g.host
	}
	res, err := cc.RoundTrip(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxProbeBody))
	_ = res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%w %d", errUnexpectedStatus, res.StatusCode)
	}
	code, msg := res.Trailer.Get("Grpc-Status"), res.Trailer.Get("Grpc-Message")
	if code == "" { // Trailers-Only: the status came in the header
		code, msg = res.Header.Get("Grpc-Status"), res.Header.Get("Grpc-Message")
	}
	if code != "0" {
		return fmt.Errorf("balancer: gRPC health check: grpc-status %s: %s", code, msg)
	}
	st, err := parseHealthResponse(body)
	if err != nil {
		return err
	}
	if st != statusServing {
		return fmt.Errorf("%w: %v", errNotServing, st)
	}
	return nil
}

// dial opens the connection to u's host: TCP for http://, TLS with h2
// chosen by ALPN for https://.
func (g *grpcCheck) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil || u.Scheme != "https" {
		return conn, err
	}
	conf := g.tls
	if conf.ServerName == "" {
		conf = conf.Clone()
		conf.ServerName = u.Hostname()
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != xhttp2.NextProtoTLS {
		_ = tc.Close()
		return nil, fmt.Errorf("balancer: gRPC health check: the target did not choose h2 by ALPN (chose %q)", p)
	}
	return tc, nil
}

// parseHealthResponse reads the serving status out of one framed
// HealthCheckResponse{status = 1}.
func parseHealthResponse(b []byte) (servingStatus, error) {
	if len(b) < 5 {
		return 0, fmt.Errorf("balancer: gRPC health check: answer of %d bytes, no message", len(b))
	}
	if b[0] != 0 {
		return 0, errors.New("balancer: gRPC health check: compressed answer (none was offered)")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-5) {
		return 0, fmt.Errorf("balancer: gRPC health check: message of %d bytes framed as %d", len(b)-5, n)
	}
	msg := b[5:]
	st := statusUnknown // proto3: an absent enum is its zero value
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return 0, fmt.Errorf("balancer: gRPC health check: bad message: %w", protowire.ParseError(l))
		}
		msg = msg[l:]
		if num == 1 && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(msg)
			if l < 0 {
				return 0, fmt.Errorf("balancer: gRPC health check: bad status: %w", protowire.ParseError(l))
			}
			st, msg = servingStatus(v), msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return 0, fmt.Errorf("balancer: gRPC health check: bad message: %w", protowire.ParseError(l))
		}
		msg = msg[l:]
	}
	return st, nil
}
