package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// peerHandler answers with the stream's peer address.
func peerHandler() wire.Handler {
	return wire.HandlerFunc(func(ctx *fasthttp.RequestCtx, st wire.Stream) {
		ctx.SetBodyString(st.Peer().String())
	})
}

// TestProxyProtocolPeer: the wire's Peer is the address the PROXY header
// carries (v1, v2), the real peer for LOCAL; a listener's connections from
// an untrusted peer, or without a header, are closed unanswered; turning
// the PROXY protocol off makes a header a bad request.
func TestProxyProtocolPeer(t *testing.T) {
	s := &Server{Handler: peerHandler()}
	s.SetProxyProtocol([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	addr := startServer(t, s)
	v2 := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x05\x7f\x00\x00\x01\x13\x88\x01\xbb") // 203.0.113.5:5000
	local := []byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00")
	get := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name   string
		prefix string
		want   string // the peer answered; "": closed unanswered
	}{
		{"v1", "PROXY TCP4 198.51.100.4 127.0.0.1 1 2\r\n", "198.51.100.4"},
		{"v1 mapped IPv6", "PROXY TCP6 ::ffff:198.51.100.5 ::1 1 2\r\n", "198.51.100.5"},
		{"v2", string(v2), "203.0.113.5"},
		{"v2 LOCAL", string(local), "127.0.0.1"},
		{"none", "", ""},
		{"garbage", "HELLO\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", addr, testTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(testTimeout))
			if _, err := io.WriteString(c, tt.prefix+get); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("got %s; want the connection closed unanswered", resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if got := string(body); got != tt.want {
				t.Errorf("peer: got %q; want %q", got, tt.want)
			}
		})
	}

	s.SetProxyProtocol([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	_, _ = io.WriteString(c, "PROXY TCP4 198.51.100.4 127.0.0.1 1 2\r\n"+get)
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
		t.Errorf("untrusted peer: got %s; want the connection closed", resp.Status)
	}
	_ = c.Close()

	s.SetProxyProtocol(nil)
	c, err = net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	_, _ = io.WriteString(c, "PROXY TCP4 198.51.100.4 127.0.0.1 1 2\r\n"+get)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 400 {
		t.Errorf("PROXY protocol off: got %v, %v; want 400", resp, err)
	}
}
