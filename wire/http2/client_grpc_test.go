package http2

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rampart-proxy/rampart/internal/testnet"
	"github.com/rampart-proxy/rampart/wire"
)

// The client against a real grpc-go server (grpc's own test service) over
// real sockets on 127.0.0.1, h2c and TLS. The test builds gRPC's framing
// by hand and drives Client directly, as the pipeline will.

// testTimeout bounds every exchange of a test: a hung exchange fails the
// test instead of hanging it.
const testTimeout = 10 * time.Second

// testService implements grpc.testing.TestService with behaviours the
// tests choose through the request payload.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	release  chan struct{} // closed at cleanup: ends "hold" calls
	canceled chan error    // FullDuplexCall reports its context's end here
}

func (s *testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	switch string(req.GetPayload().GetBody()) {
	case "hold": // ignore the deadline: only the proxy can end the call in time
		<-s.release
	case "fail":
		return nil, status.Error(codes.NotFound, "nö such thing: 100%")
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, req.GetResponseSize())}}, nil
}

func (s *testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, st grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	if string(req.GetPayload().GetBody()) == "fail" {
		return status.Error(codes.DataLoss, "lost after the messages")
	}
	return nil
}

func (s *testService) StreamingInputCall(st grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	var sum int32
	for {
		req, err := st.Recv()
		if err == io.EOF {
			return st.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: sum})
		}
		if err != nil {
			return err
		}
		sum += int32(len(req.GetPayload().GetBody()))
	}
}

func (s *testService) FullDuplexCall(st grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			select {
			case s.canceled <- st.Context().Err():
			default:
			}
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

// startGRPC serves the test service on 127.0.0.1; with creds (TLS) the
// target is https://, without it h2c http://.
func startGRPC(t *testing.T, creds credentials.TransportCredentials) (string, *testService) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	scheme := "http://"
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
		scheme = "https://"
	}
	srv := grpc.NewServer(opts...)
	svc := &testService{release: make(chan struct{}), canceled: make(chan error, 1)}
	testgrpc.RegisterTestServiceServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		close(svc.release)
		srv.Stop()
	})
	return scheme + lis.Addr().String(), svc
}

// testPKI is a CA and a certificate it signed for 127.0.0.1.
type testPKI struct {
	roots *x509.CertPool
	leaf  tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rampart test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &testPKI{roots: roots, leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// clientTLS is the upstream TLS config a proxy would build for the test CA.
func (p *testPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}
}

// newTestClient builds a Client for target with the test's settings.
func newTestClient(t *testing.T, target string, opt ClientOptions) *Client {
	t.Helper()
	if opt.Connect == 0 {
		opt.Connect = 2 * time.Second
	}
	c, err := NewClient(target, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// grpcRequest is a gRPC call of grpc.testing.TestService/method as the
// pipeline would hand it over.
func grpcRequest(method string) *fasthttp.Request {
	req := new(fasthttp.Request)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetRequestURI("/grpc.testing.TestService/" + method)
	req.Header.SetHost("backend.test")
	req.Header.SetContentType("application/grpc")
	req.Header.Set("te", "trailers")
	return req
}

// frame is m in gRPC's length-prefixed framing.
func frame(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

// readMessage reads one framed message from r into m.
func readMessage(r io.Reader, m proto.Message) error {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	b := make([]byte, binary.BigEndian.Uint32(h[1:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return proto.Unmarshal(b, m)
}

// grpcStatus returns grpc-status and grpc-message from the trailers, or
// from the header of a Trailers-Only answer.
func grpcStatus(resp *fasthttp.Response, body io.ReadCloser) (string, string) {
	if s := resp.Header.Peek(HeaderStatus); len(s) > 0 {
		return string(s), string(resp.Header.Peek(HeaderMessage))
	}
	var st, msg string
	for _, f := range body.(wire.TrailerSource).Trailers() {
		switch string(f.Name) {
		case HeaderStatus:
			st = string(f.Value)
		case HeaderMessage:
			msg = string(f.Value)
		}
	}
	return st, msg
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// transports are the two ways to an HTTP/2 target.
func transports(t *testing.T) []struct {
	name   string
	target string
	svc    *testService
	opt    ClientOptions
} {
	pki := newTestPKI(t)
	h2c, h2cSvc := startGRPC(t, nil)
	h2, h2Svc := startGRPC(t, credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pki.leaf}}))
	return []struct {
		name   string
		target string
		svc    *testService
		opt    ClientOptions
	}{
		{"h2c", h2c, h2cSvc, ClientOptions{}},
		{"tls", h2, h2Svc, ClientOptions{TLS: pki.clientTLS()}},
	}
}

func TestClientGRPCUnary(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			for i := range 3 { // the second and third calls reuse the connection
				req := grpcRequest("UnaryCall")
				body := frame(t, &testgrpc.SimpleRequest{ResponseSize: int32(100 + i)})
				var resp fasthttp.Response
				rb, err := c.RoundTrip(testContext(t), req, bytes.NewReader(body), &resp)
				if err != nil {
					t.Fatalf("call %d: RoundTrip: %v", i, err)
				}
				if got := resp.StatusCode(); got != 200 {
					t.Errorf("status: got %d; want 200", got)
				}
				if got := string(resp.Header.ContentType()); got != "application/grpc" {
					t.Errorf("content-type: got %q; want application/grpc", got)
				}
				var out testgrpc.SimpleResponse
				if err := readMessage(rb, &out); err != nil {
					t.Fatalf("reading the answer: %v", err)
				}
				if got := len(out.GetPayload().GetBody()); got != 100+i {
					t.Errorf("payload: got %d bytes; want %d", got, 100+i)
				}
				if n, err := io.Copy(io.Discard, rb); n != 0 || err != nil {
					t.Errorf("after the message: got %d bytes, %v; want 0, nil", n, err)
				}
				if st, _ := grpcStatus(&resp, rb); st != "0" {
					t.Errorf("grpc-status: got %q; want 0", st)
				}
				if got := rb.(wire.Flusher).FlushEach(); !got {
					t.Errorf("FlushEach: got false; want true for gRPC")
				}
				_ = rb.Close()
			}
		})
	}
}

// TestClientGRPCPingPong sends one message, waits for its answer, and
// repeats: it passes only if neither direction is buffered.
func TestClientGRPCPingPong(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			ctx := testContext(t)
			pr, pw := io.Pipe()
			defer pw.Close()
			var resp fasthttp.Response
			type result struct {
				body io.ReadCloser
				err  error
			}
			done := make(chan result, 1)
			go func() {
				rb, err := c.RoundTrip(ctx, grpcRequest("FullDuplexCall"), pr, &resp)
				if err != nil {
					_ = pr.CloseWithError(err) // unblock the writer
				}
				done <- result{rb, err}
			}()
			var rb io.ReadCloser
			for i := range 4 {
				size := int32(10 + i)
				msg := frame(t, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: size}}})
				if _, err := pw.Write(msg); err != nil {
					t.Fatalf("ping %d: %v", i, err)
				}
				if i == 0 { // the server answers the header with its first message
					r := <-done
					if r.err != nil {
						t.Fatalf("RoundTrip: %v", r.err)
					}
					rb = r.body
					defer rb.Close()
				}
				var out testgrpc.StreamingOutputCallResponse
				if err := readMessage(rb, &out); err != nil {
					t.Fatalf("pong %d: %v", i, err)
				}
				if got := int32(len(out.GetPayload().GetBody())); got != size {
					t.Errorf("pong %d: got %d bytes; want %d", i, got, size)
				}
			}
			_ = pw.Close() // half-close: the server's Recv sees EOF and ends the call
			if n, err := io.Copy(io.Discard, rb); n != 0 || err != nil {
				t.Errorf("after the last pong: got %d bytes, %v; want 0, nil", n, err)
			}
			if st, _ := grpcStatus(&resp, rb); st != "0" {
				t.Errorf("grpc-status: got %q; want 0", st)
			}
		})
	}
}

func TestClientGRPCStreams(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name+"/server streaming", func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			sizes := []int32{1, 1000, 70000, 0}
			params := make([]*testgrpc.ResponseParameters, len(sizes))
			for i, s := range sizes {
				params[i] = &testgrpc.ResponseParameters{Size: s}
			}
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), grpcRequest("StreamingOutputCall"),
				bytes.NewReader(frame(t, &testgrpc.StreamingOutputCallRequest{ResponseParameters: params})), &resp)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			for i, want := range sizes {
				var out testgrpc.StreamingOutputCallResponse
				if err := readMessage(rb, &out); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if got := int32(len(out.GetPayload().GetBody())); got != want {
					t.Errorf("message %d: got %d bytes; want %d", i, got, want)
				}
			}
			if _, err := io.Copy(io.Discard, rb); err != nil {
				t.Fatal(err)
			}
			if st, _ := grpcStatus(&resp, rb); st != "0" {
				t.Errorf("grpc-status: got %q; want 0", st)
			}
		})
		t.Run(tr.name+"/client streaming", func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			var body bytes.Buffer
			sizes := []int{27182, 8, 1828, 45904}
			for _, s := range sizes {
				body.Write(frame(t, &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, s)}}))
			}
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), grpcRequest("StreamingInputCall"), &body, &resp)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			var out testgrpc.StreamingInputCallResponse
			if err := readMessage(rb, &out); err != nil {
				t.Fatal(err)
			}
			if got, want := out.GetAggregatedPayloadSize(), int32(27182+8+1828+45904); got != want {
				t.Errorf("aggregated size: got %d; want %d", got, want)
			}
		})
	}
}

// TestClientGRPCStatus checks that grpc-status and grpc-message come
// through as the server sent them: in trailers after messages, and in the
// header of a Trailers-Only answer.
func TestClientGRPCStatus(t *testing.T) {
	target, _ := startGRPC(t, nil)
	c := newTestClient(t, target, ClientOptions{})
	tests := []struct {
		name     string
		method   string
		msg      proto.Message
		messages int
		status   string
		message  string
		inHeader bool
	}{
		{"trailers after messages", "StreamingOutputCall", &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 3}, {Size: 4}},
			Payload:            &testgrpc.Payload{Body: []byte("fail")},
		}, 2, strconv.Itoa(int(DataLoss)), "lost after the messages", false},
		{"trailers only", "UnaryCall", &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("fail")}},
			0, strconv.Itoa(int(NotFound)), "n%C3%B6 such thing: 100%25", true},
		{"unimplemented", "UnimplementedCall", &testgrpc.Empty{}, 0, strconv.Itoa(int(Unimplemented)), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), grpcRequest(tt.method), bytes.NewReader(frame(t, tt.msg)), &resp)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			for i := range tt.messages {
				var out testgrpc.StreamingOutputCallResponse
				if err := readMessage(rb, &out); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if n, err := io.Copy(io.Discard, rb); n != 0 || err != nil {
				t.Fatalf("after the messages: got %d bytes, %v; want 0, nil", n, err)
			}
			if got := len(resp.Header.Peek(HeaderStatus)) > 0; got != tt.inHeader {
				t.Errorf("grpc-status in the header: got %v; want %v", got, tt.inHeader)
			}
			st, msg := grpcStatus(&resp, rb)
			if st != tt.status {
				t.Errorf("grpc-status: got %q; want %q", st, tt.status)
			}
			if tt.message != "" && msg != tt.message {
				t.Errorf("grpc-message: got %q; want %q", msg, tt.message)
			}
		})
	}
}

// TestClientGRPCCancel cancels the downstream context in the middle of a
// bidi call: the server must see its call canceled (RST_STREAM upstream).
func TestClientGRPCCancel(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() {
				_, _ = pw.Write(frame(t, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}))
			}()
			var resp fasthttp.Response
			rb, err := c.RoundTrip(ctx, grpcRequest("FullDuplexCall"), pr, &resp)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer rb.Close()
			var out testgrpc.StreamingOutputCallResponse
			if err := readMessage(rb, &out); err != nil {
				t.Fatalf("first message: %v", err)
			}
			cancel() // the client goes away
			select {
			case err := <-tr.svc.canceled:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("server's context: got %v; want context.Canceled", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("the server never saw the call canceled")
			}
			_, err = io.Copy(io.Discard, rb)
			if !errors.Is(err, ErrCanceled) {
				t.Errorf("reading after the cancel: got %v; want ErrCanceled", err)
			}
		})
	}
}

// TestClientGRPCTimeout: a call with grpc-timeout to a server that holds
// it (ignoring the deadline) ends with DEADLINE_EXCEEDED long before the
// server would answer: the server answers only when the test ends.
func TestClientGRPCTimeout(t *testing.T) {
	for _, tr := range transports(t) {
		t.Run(tr.name, func(t *testing.T) {
			c := newTestClient(t, tr.target, tr.opt)
			req := grpcRequest("UnaryCall")
			req.Header.Set(HeaderTimeout, "200m")
			var resp fasthttp.Response
			rb, err := c.RoundTrip(testContext(t), req,
				bytes.NewReader(frame(t, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hold")}})), &resp)
			if err != nil {
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("RoundTrip: got %v; want ErrTimeout", err)
				}
				if got := CodeForError(err); got != DeadlineExceeded {
					t.Errorf("CodeForError: got %v; want DEADLINE_EXCEEDED", got)
				}
				return
			}
			// grpc-go's server may answer the deadline itself.
			defer rb.Close()
			_, _ = io.Copy(io.Discard, rb)
			if st, _ := grpcStatus(&resp, rb); st != "4" {
				t.Errorf("grpc-status: got %q; want 4 (DEADLINE_EXCEEDED)", st)
			}
		})
	}
}

func TestClientConnectFailure(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	_ = lis.Close() // nothing listens there now
	pki := newTestPKI(t)
	h2c, _ := startGRPC(t, nil)
	tests := []struct {
		name   string
		target string
		opt    ClientOptions
	}{
		{"refused h2c", "http://" + closed, ClientOptions{}},
		{"refused tls", "https://" + closed, ClientOptions{TLS: pki.clientTLS()}},
		{"tls to an h2c server", "https://" + h2c[len("http://"):], ClientOptions{TLS: pki.clientTLS()}},
		{"untrusted certificate", "https://" + startH1TLS(t, pki), ClientOptions{TLS: &tls.Config{MinVersion: tls.VersionTLS12}}},
		{"no h2 by ALPN", "https://" + startH1TLS(t, pki), ClientOptions{TLS: pki.clientTLS()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.target, tt.opt)
			var resp fasthttp.Response
			_, err := c.RoundTrip(testContext(t), grpcRequest("EmptyCall"), bytes.NewReader(frame(t, &testgrpc.Empty{})), &resp)
			if !errors.Is(err, ErrConnect) {
				t.Fatalf("got %v; want ErrConnect", err)
			}
			if got := CodeForError(err); got != Unavailable {
				t.Errorf("CodeForError: got %v; want UNAVAILABLE", got)
			}
		})
	}
}

// startH1TLS serves TLS that offers only http/1.1 by ALPN, and answers
// nothing; it returns host:port.
func startH1TLS(t *testing.T, pki *testPKI) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pki.leaf}, NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return testnet.Serve(t, lis, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(testTimeout))
		_ = c.(*tls.Conn).Handshake()
		_, _ = io.Copy(io.Discard, c)
	}).Addr()
}
