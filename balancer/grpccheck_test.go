package balancer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/internal/testlog"
)

// grpcBackend serves grpc-go's health service (when health is true) over
// h2c on 127.0.0.1 and returns its target URL and health server.
func grpcBackend(t *testing.T, withHealth bool) (string, *health.Server) {
	t.Helper()
	return grpcBackendTLS(t, withHealth, nil)
}

// grpcBackendTLS is grpcBackend over TLS with cert when cert is not nil.
func grpcBackendTLS(t *testing.T, withHealth bool, cert *tls.Certificate) (string, *health.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	scheme := "http://"
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
		scheme = "https://"
	}
	srv := grpc.NewServer(opts...)
	hs := health.NewServer()
	if withHealth {
		healthpb.RegisterHealthServer(srv, hs)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return scheme + lis.Addr().String(), hs
}

// selfSigned is a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// grpcChecked starts a grpc health check of service on target.
func grpcChecked(t *testing.T, target, service string) (chan transition, *testlog.Buffer) {
	t.Helper()
	return grpcCheckedTLS(t, target, service, nil)
}

// grpcCheckedTLS is grpcChecked with the TLS config for https:// targets.
func grpcCheckedTLS(t *testing.T, target, service string, tlsConf *tls.Config) (chan transition, *testlog.Buffer) {
	t.Helper()
	hc := fastCheck()
	hc.Type, hc.Service, hc.Path = config.HealthCheckGRPC, service, ""
	p := NewPool("api", []*Target{{Weight: 1, State: NewRegistry().State(target)}})
	events := make(chan transition, 100)
	logs := &testlog.Buffer{}
	c, err := NewChecker(p, hc, CheckerOptions{
		Logger:       slog.New(slog.NewTextHandler(logs, nil)),
		OnTransition: func(_, target string, healthy bool) { events <- transition{target, healthy} },
		TLSConfig:    tlsConf,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Start(context.Background())
	t.Cleanup(c.Stop)
	return events, logs
}

// TestGRPCCheckDownAndUp flips a real grpc-go health server between
// SERVING and NOT_SERVING and watches the target follow.
func TestGRPCCheckDownAndUp(t *testing.T) {
	tests := []struct {
		name    string
		service string
	}{
		{"server", ""},
		{"named service", "grpc.testing.TestService"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, hs := grpcBackend(t, true)
			hs.SetServingStatus(tt.service, healthpb.HealthCheckResponse_SERVING)
			if tt.service != "" {
				hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // must not matter
			}
			events, logs := grpcChecked(t, target, tt.service)
			hs.SetServingStatus(tt.service, healthpb.HealthCheckResponse_NOT_SERVING)
			if e := await(t, events); e.healthy {
				t.Fatalf("got %+v; want the target unhealthy after NOT_SERVING", e)
			}
			if !strings.Contains(logs.String(), "NOT_SERVING") {
				t.Errorf("log: got %q; want the reason NOT_SERVING", logs.String())
			}
			hs.SetServingStatus(tt.service, healthpb.HealthCheckResponse_SERVING)
			if e := await(t, events); !e.healthy {
				t.Fatalf("got %+v; want the target healthy after SERVING", e)
			}
		})
	}
}

// TestGRPCCheckTLS: over TLS, h2 chosen by ALPN, the check follows the
// health server as over h2c; a certificate the checker does not trust
// fails it.
func TestGRPCCheckTLS(t *testing.T) {
	cert, roots := selfSigned(t)
	target, hs := grpcBackendTLS(t, true, cert)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	events, _ := grpcCheckedTLS(t, target, "", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if e := await(t, events); e.healthy {
		t.Fatalf("got %+v; want the target unhealthy after NOT_SERVING", e)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if e := await(t, events); !e.healthy {
		t.Fatalf("got %+v; want the target healthy after SERVING", e)
	}

	untrusted, hs2 := grpcBackendTLS(t, true, cert)
	hs2.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	events, logs := grpcCheckedTLS(t, untrusted, "", nil)
	if e := await(t, events); e.healthy {
		t.Fatalf("got %+v; want the target unhealthy: its certificate is not trusted", e)
	}
	if !strings.Contains(logs.String(), "certificate") {
		t.Errorf("log: got %q; want a certificate error", logs.String())
	}
}

// TestGRPCCheckFails: a target that cannot say SERVING goes down.
func TestGRPCCheckFails(t *testing.T) {
	withHealth, _ := grpcBackend(t, true)
	withoutHealth, _ := grpcBackend(t, false)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + lis.Addr().String()
	_ = lis.Close()
	tests := []struct {
		name, target, service, reason string
	}{
		{"unknown service", withHealth, "no.such.Service", "grpc-status 5: unknown service"},
		{"no health service", withoutHealth, "", "grpc-status 12"},
		{"refused", refused, "", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			events, logs := grpcChecked(t, tt.target, tt.service)
			if e := await(t, events); e.healthy {
				t.Fatalf("got %+v; want the target unhealthy", e)
			}
			if !strings.Contains(logs.String(), tt.reason) {
				t.Errorf("log: got %q; want %q in it", logs.String(), tt.reason)
			}
		})
	}
}

func TestParseHealthResponse(t *testing.T) {
	framed := func(msg []byte) []byte {
		return append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg))), msg...)
	}
	status := func(v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), v)
	}
	unknownField := protowire.AppendString(protowire.AppendTag(nil, 7, protowire.BytesType), "x")
	tests := []struct {
		name    string
		in      []byte
		want    servingStatus
		wantErr bool
	}{
		{"serving", framed(status(1)), statusServing, false},
		{"not serving", framed(status(2)), statusNotServing, false},
		{"empty message is UNKNOWN", framed(nil), statusUnknown, false},
		{"unknown field skipped", framed(append(unknownField, status(1)...)), statusServing, false},
		{"no frame", nil, 0, true},
		{"short frame", []byte{0, 0, 0, 0, 9, 8}, 0, true},
		{"compressed", append([]byte{1}, framed(status(1))[1:]...), 0, true},
		{"truncated varint", framed([]byte{0x08, 0x80}), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHealthResponse(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
