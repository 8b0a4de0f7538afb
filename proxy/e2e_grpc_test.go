package proxy

// gRPC through Rampart with grpc-go on both sides: grpc-go's client to
// Rampart's h2c listener, Rampart to a grpc-go server (grpc's own test
// service and the health service) over h2c. What a gRPC client sees of the
// proxy's own failures, cancellation reaching the server, and the grpc
// health check.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// grpcService implements grpc.testing.TestService for these tests: a
// UnaryCall whose payload is "hold" waits until the call ends (its context)
// or the test does; FullDuplexCall echoes and reports how its call ended.
type grpcService struct {
	testgrpc.UnimplementedTestServiceServer
	release chan struct{} // closed when the test ends
	ended   chan error    // FullDuplexCall's context error at its end
}

func (s *grpcService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if string(req.GetPayload().GetBody()) == "hold" {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.release:
		}
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte("pong")}}, nil
}

func (s *grpcService) FullDuplexCall(st grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			select {
			case s.ended <- st.Context().Err():
			default:
			}
			return err
		}
		if string(req.GetPayload().GetBody()) == "end" {
			// Ends the call while the client's side is still open.
			return status.Error(codes.FailedPrecondition, "ended by the server")
		}
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// startGRPCUpstream serves the test service and the health service (its
// overall status SERVING) in cleartext on a loopback port.
func startGRPCUpstream(t *testing.T) (addr string, svc *grpcService, hs *health.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc = &grpcService{release: make(chan struct{}), ended: make(chan error, 1)}
	testgrpc.RegisterTestServiceServer(srv, svc)
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		close(svc.release)
		srv.Stop()
	})
	return lis.Addr().String(), svc, hs
}

// grpcClient is grpc-go's client to addr in cleartext (h2c), sending
// authority as :authority.
func grpcClient(t *testing.T, addr, authority string) testgrpc.TestServiceClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// grpcE2EConfig is a listener "web" that serves h2c and routes by host:
// live.test to the gRPC server, dead.test to a target nothing listens on,
// limited.test behind a rate limit, guarded.test behind the CRS, slow.test
// to the gRPC server with a 300ms read timeout.
func grpcE2EConfig(live, dead string) string {
	return fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [h2c, http1]
rate_limits:
  once:
    key: route
    rate: 1/m
    burst: 1
waf:
  crs:
    mode: block
upstreams:
  live:
    protocol: http2
    targets: [{url: "http://%[1]s"}]
  slow:
    protocol: http2
    targets: [{url: "http://%[1]s"}]
    timeouts: {read: 300ms}
  dead:
    protocol: http2
    targets: [{url: "http://%[2]s"}]
routes:
  - {name: live, match: {host: live.test}, upstream: live}
  - {name: dead, match: {host: dead.test}, upstream: dead}
  - {name: limited, match: {host: limited.test}, upstream: live, rate_limit: once}
  - {name: guarded, match: {host: guarded.test}, upstream: live, waf: crs}
  - {name: slow, match: {host: slow.test}, upstream: slow}
access_log: {path: "off"}
`, live, dead)
}

// TestGRPCProxyFailuresE2E: grpc-go's client sees Rampart's own failures as
// gRPC statuses (and the proxy's message, so it is the proxy that
// answered), and calls that pass work.
func TestGRPCProxyFailuresE2E(t *testing.T) {
	live, _, _ := startGRPCUpstream(t)
	p := startProxy(t, grpcE2EConfig(live, freeAddr(t)))
	type call struct {
		host     string
		payload  string
		md       []string      // metadata key, value pairs
		deadline time.Duration // 0: none
		wantCode codes.Code
		wantMsg  string // a part of the status message
	}
	tests := []struct {
		name  string
		calls []call
	}{
		{"a call that passes", []call{{host: "live.test", wantCode: codes.OK}}},
		{"no route", []call{{host: "nowhere.test", wantCode: codes.Unimplemented, wantMsg: "no route"}}},
		{"dead target", []call{{host: "dead.test", wantCode: codes.Unavailable, wantMsg: "could not be reached"}}},
		{"rate limit", []call{
			{host: "limited.test", wantCode: codes.OK},
			{host: "limited.test", wantCode: codes.ResourceExhausted, wantMsg: "Too Many Requests"},
		}},
		{"WAF", []call{
			{host: "guarded.test", md: []string{"x-tenant", "acme"}, wantCode: codes.OK},
			{host: "guarded.test", md: []string{"referer", "<script>alert(1)</script>"},
				wantCode: codes.PermissionDenied, wantMsg: "web application firewall"},
		}},
		{"slow target, no deadline: the read timeout", []call{
			{host: "slow.test", payload: "hold", wantCode: codes.DeadlineExceeded, wantMsg: "did not answer in time"},
		}},
		{"slow target, the client's deadline", []call{
			{host: "live.test", payload: "hold", deadline: 200 * time.Millisecond, wantCode: codes.DeadlineExceeded},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, c := range tt.calls {
				client := grpcClient(t, p.addr, c.host)
				ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
				if c.deadline > 0 {
					cancel()
					ctx, cancel = context.WithTimeout(context.Background(), c.deadline)
				}
				if len(c.md) > 0 {
					ctx = metadata.AppendToOutgoingContext(ctx, c.md...)
				}
				_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(c.payload)}})
				cancel()
				st := status.Convert(err)
				if st.Code() != c.wantCode || !strings.Contains(st.Message(), c.wantMsg) {
					t.Errorf("call %d to %s: got %v %q; want %v with %q", i, c.host, st.Code(), st.Message(), c.wantCode, c.wantMsg)
				}
			}
		})
	}
}

// TestGRPCCancellationE2E: a client that cancels a streaming call in its
// middle (RST_STREAM CANCEL to Rampart) has the server's call canceled
// too: Rampart resets the upstream stream.
func TestGRPCCancellationE2E(t *testing.T) {
	live, svc, _ := startGRPCUpstream(t)
	p := startProxy(t, grpcE2EConfig(live, freeAddr(t)))
	client := grpcClient(t, p.addr, "live.test")
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	callCtx, cancelCall := context.WithCancel(ctx)
	st, err := client.FullDuplexCall(callCtx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // ping-pong: the stream is live both ways
		msg := fmt.Sprintf("ping %d", i)
		if err := st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		got, err := st.Recv()
		if err != nil || string(got.GetPayload().GetBody()) != msg {
			t.Fatalf("receive %d: got %q, %v; want %q", i, got.GetPayload().GetBody(), err, msg)
		}
	}
	cancelCall()
	select {
	case err := <-svc.ended:
		if err != context.Canceled {
			t.Errorf("the server's call ended with %v; want %v", err, context.Canceled)
		}
	case <-time.After(e2eTimeout):
		t.Fatal("the server's call was not canceled; want it canceled when the client cancels")
	}
}

// TestGRPCHealthCheckE2E: health_check type grpc asks the target's
// grpc.health.v1 service; NOT_SERVING marks the target down (calls then
// get UNAVAILABLE from Rampart: no healthy target), SERVING up again.
func TestGRPCHealthCheckE2E(t *testing.T) {
	live, _, hs := startGRPCUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [h2c]
upstreams:
  app:
    protocol: http2
    targets: [{url: "http://%s"}]
    health_check: {type: grpc, interval: 100ms, timeout: 100ms, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - {name: all, upstream: app}
access_log: {path: "off"}
`, live))
	client := grpcClient(t, p.addr, "app.test")
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		defer cancel()
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	healthy := func() bool { return targetState(p, "app", 0).Healthy() }
	steps := []struct {
		name     string
		set      healthpb.HealthCheckResponse_ServingStatus
		healthy  bool
		wantCode codes.Code
	}{
		{"not serving", healthpb.HealthCheckResponse_NOT_SERVING, false, codes.Unavailable},
		{"serving again", healthpb.HealthCheckResponse_SERVING, true, codes.OK},
	}
	for _, s := range steps {
		hs.SetServingStatus("", s.set)
		if !waitFor(e2eTimeout, func() bool { return healthy() == s.healthy }) {
			t.Fatalf("%s: target healthy %v after %v; want %v", s.name, healthy(), e2eTimeout, s.healthy)
		}
		if got := status.Code(call()); got != s.wantCode {
			t.Errorf("%s: a call got %v; want %v", s.name, got, s.wantCode)
		}
	}
}

// TestGRPCLongStreamE2E: a streaming call that lasts many times the
// per-wait timeouts (the listener's body_timeout, the upstream's read
// timeout) is not cut while messages flow: no whole-stream bound applies,
// only grpc-timeout, which this call does not set.
func TestGRPCLongStreamE2E(t *testing.T) {
	live, _, _ := startGRPCUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [h2c]
    limits: {body_timeout: 300ms, send_timeout: 300ms}
upstreams:
  app:
    protocol: http2
    targets: [{url: "http://%s"}]
    timeouts: {read: 300ms, write: 300ms}
routes:
  - {name: all, upstream: app}
access_log: {path: "off"}
`, live))
	client := grpcClient(t, p.addr, "app.test")
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	st, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, pace = 12, 100 * time.Millisecond // 1.2 s: four times each timeout
	for i := range rounds {
		msg := fmt.Sprintf("ping %d", i)
		if err := st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		got, err := st.Recv()
		if err != nil || string(got.GetPayload().GetBody()) != msg {
			t.Fatalf("round %d: got %q, %v; want %q", i, got.GetPayload().GetBody(), err, msg)
		}
		time.Sleep(pace)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != io.EOF {
		t.Errorf("end of the call: got %v; want io.EOF (status OK)", err)
	}
}

// TestGRPCRetryOnConnectFailureE2E: a call whose target cannot be reached
// goes to another target (retries: 1): nothing was sent to the first.
func TestGRPCRetryOnConnectFailureE2E(t *testing.T) {
	live, _, _ := startGRPCUpstream(t)
	p := startProxy(t, fmt.Sprintf(`
listeners:
  web:
    address: 127.0.0.1:0
    protocols: [h2c]
upstreams:
  app:
    protocol: http2
    balancer: round_robin
    retries: 1
    targets: [{url: "http://%s"}, {url: "http://%s"}]
routes:
  - {name: all, upstream: app}
access_log: {path: "off"}
`, freeAddr(t), live))
	client := grpcClient(t, p.addr, "app.test")
	for i := range 4 { // round robin: two of them pick the dead target first
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			t.Errorf("call %d: got %v; want OK (retried on the live target)", i, err)
		}
	}
}

// TestGRPCServerEndsOpenStreamE2E: a server that ends a bidirectional call
// (with a status) while the client's side is still open, the client silent:
// the client gets the status at once, and Rampart, whose read of the
// client's next message is still waiting, keeps serving (repeated, on one
// connection).
func TestGRPCServerEndsOpenStreamE2E(t *testing.T) {
	live, _, _ := startGRPCUpstream(t)
	p := startProxy(t, grpcE2EConfig(live, freeAddr(t)))
	client := grpcClient(t, p.addr, "live.test")
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
		st, err := client.FullDuplexCall(ctx)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if err := st.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("end")}}); err != nil {
			cancel()
			t.Fatalf("call %d: send: %v", i, err)
		}
		_, err = st.Recv()
		if got := status.Code(err); got != codes.FailedPrecondition {
			t.Errorf("call %d: got %v; want %v", i, err, codes.FailedPrecondition)
		}
		time.Sleep(20 * time.Millisecond) // the client stays open a moment
		cancel()
	}
	// Rampart still serves.
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Errorf("a call after them: got %v; want OK", err)
	}
}

// TestGRPCTimeoutHonouredByRampart: a call's grpc-timeout bounds it at
// Rampart, whatever the client does: a raw HTTP/2 client that sends
// grpc-timeout but never gives up itself gets DEADLINE_EXCEEDED from
// Rampart in about that time, while the server still holds the call.
func TestGRPCTimeoutHonouredByRampart(t *testing.T) {
	live, _, _ := startGRPCUpstream(t)
	p := startProxy(t, grpcE2EConfig(live, freeAddr(t)))
	msg, err := proto.Marshal(&testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hold")}})
	if err != nil {
		t.Fatal(err)
	}
	framed := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(msg)))
	framed = append(framed, msg...)
	req, _ := http.NewRequest(http.MethodPost, "http://live.test/grpc.testing.TestService/UnaryCall", bytes.NewReader(framed))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "300m")
	tr := h2cTransport(p.addr)
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), e2eTimeout)
	defer cancel()
	start := time.Now()
	res, err := tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	took := time.Since(start)
	t.Logf("answered in %v", took)
	code := res.Trailer.Get("Grpc-Status")
	if code == "" {
		code = res.Header.Get("Grpc-Status") // Trailers-Only
	}
	if res.StatusCode != http.StatusOK || code != "4" {
		t.Errorf("got HTTP %d, grpc-status %q; want 200, 4 (DEADLINE_EXCEEDED)", res.StatusCode, code)
	}
	if took >= e2eTimeout/2 {
		t.Errorf("the answer took %v; want it at about the grpc-timeout (300ms)", took)
	}
}
