package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-proxy/rampart/internal/testnet"
)

// wsAccept computes Sec-WebSocket-Accept for a key (RFC 6455 section 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// wsFrame is one WebSocket frame.
type wsFrame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// writeWSFrame writes f, masked when mask is true (client to server).
func writeWSFrame(w io.Writer, f wsFrame, mask bool) error {
	var hdr []byte
	b0 := f.opcode
	if f.fin {
		b0 |= 0x80
	}
	hdr = append(hdr, b0)
	var maskBit byte
	if mask {
		maskBit = 0x80
	}
	switch n := len(f.payload); {
	case n < 126:
		hdr = append(hdr, maskBit|byte(n))
	case n <= 0xffff:
		hdr = append(hdr, maskBit|126)
		hdr = binary.BigEndian.AppendUint16(hdr, uint16(n))
	default:
		hdr = append(hdr, maskBit|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	payload := f.payload
	if mask {
		var key [4]byte
		_, _ = rand.Read(key[:])
		hdr = append(hdr, key[:]...)
		payload = make([]byte, len(f.payload))
		for i, c := range f.payload {
			payload[i] = c ^ key[i%4]
		}
	}
	_, err := w.Write(append(hdr, payload...))
	return err
}

// readWSFrame reads one frame, unmasking it, and reports whether it was
// masked.
func readWSFrame(r io.Reader) (f wsFrame, masked bool, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return f, false, err
	}
	f.fin = h[0]&0x80 != 0
	f.opcode = h[0] & 0x0f
	masked = h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, masked, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return f, masked, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return f, masked, fmt.Errorf("frame of %d bytes", n)
	}
	var key [4]byte
	if masked {
		if _, err := io.ReadFull(r, key[:]); err != nil {
			return f, masked, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, masked, err
	}
	if masked {
		for i := range f.payload {
			f.payload[i] ^= key[i%4]
		}
	}
	return f, masked, nil
}

// wsUpstream is a WebSocket echo server on a plain listener. /refuse
// answers 400 instead of upgrading.
type wsUpstream struct {
	ln net.Listener

	mu        sync.Mutex // guards the fields below
	handshake *rawMessage
	unmasked  int           // frames from the proxy that were not masked
	slowSeen  chan struct{} // signalled when a /slow101 handshake arrives
}

func startWSUpstream(t *testing.T) *wsUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &wsUpstream{ln: ln}
	testnet.Serve(t, ln, u.serve)
	return u
}

func (u *wsUpstream) addr() string { return u.ln.Addr().String() }

func (u *wsUpstream) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(e2eTimeout))
	br := bufio.NewReader(c)
	req, err := readRawHeader(br)
	if err != nil {
		return
	}
	u.mu.Lock()
	u.handshake = req
	u.mu.Unlock()
	if strings.HasPrefix(req.first, "GET /slow101 ") {
		u.mu.Lock()
		ch := u.slowSeen
		u.mu.Unlock()
		if ch != nil {
			ch <- struct{}{}
		}
		time.Sleep(300 * time.Millisecond) // the handshake is in flight meanwhile
	}
	if strings.HasPrefix(req.first, "GET /refuse ") {
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nkeep-alive: timeout=5\r\n"+
			"connection: x-hint\r\nx-hint: internal\r\nContent-Length: 15\r\n\r\nno upgrade here")
		return
	}
	key, _ := req.get("Sec-WebSocket-Key")
	_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "+wsAccept(key)+"\r\n\r\n")
	for i := 0; i < 1000; i++ {
		f, masked, err := readWSFrame(br)
		if err != nil {
			return
		}
		if !masked {
			u.mu.Lock()
			u.unmasked++
			u.mu.Unlock()
		}
		// Echo data frames; answer a close with a close, then leave.
		if err := writeWSFrame(c, f, false); err != nil || f.opcode == 0x8 {
			return
		}
	}
}

// wsKey returns a fresh Sec-WebSocket-Key.
func wsKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// TestE2EWebSocket upgrades through the proxy, exchanges frames with an echo
// upstream and closes.
func TestE2EWebSocket(t *testing.T) {
	up := startWSUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))

	cases := []struct {
		name       string
		connection string
		upgrade    string
		// eager sends the first frame in the same write as the
		// handshake, before the 101 arrives.
		eager bool
	}{
		{"canonical headers", "Upgrade", "websocket", false},
		{"keep-alive and upgrade tokens", "keep-alive, Upgrade", "WebSocket", false},
		{"lower case", "upgrade", "websocket", false},
		{"frame sent with the handshake", "Upgrade", "websocket", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, p.addr)
			key := wsKey()
			req := "GET /ws?room=1 HTTP/1.1\r\nHost: app.test\r\nConnection: " + tc.connection + "\r\nUpgrade: " + tc.upgrade +
				"\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nOrigin: http://app.test\r\n\r\n"
			first := wsFrame{fin: true, opcode: 0x1, payload: []byte("hello rampart")}
			var out bytes.Buffer
			out.WriteString(req)
			if tc.eager {
				_ = writeWSFrame(&out, first, true)
			}
			if _, err := c.conn.Write(out.Bytes()); err != nil {
				t.Fatal(err)
			}
			resp, err := readRawHeader(c.br)
			if err != nil {
				t.Fatalf("reading the handshake response: %v", err)
			}
			if resp.status() != 101 {
				t.Fatalf("status: got %q; want 101", resp.first)
			}
			if got, _ := resp.get("Sec-WebSocket-Accept"); got != wsAccept(key) {
				t.Errorf("Sec-WebSocket-Accept: got %q; want %q", got, wsAccept(key))
			}
			if got, _ := resp.get("Upgrade"); !strings.EqualFold(got, "websocket") {
				t.Errorf("Upgrade: got %q; want websocket", got)
			}
			if got, _ := resp.get("Connection"); !strings.EqualFold(got, "upgrade") {
				t.Errorf("Connection: got %q; want Upgrade", got)
			}

			up.mu.Lock()
			hs := up.handshake
			up.mu.Unlock()
			if hs == nil {
				t.Fatal("the upstream saw no handshake")
			}
			if !strings.HasPrefix(hs.first, "GET /ws?room=1 HTTP/1.1") {
				t.Errorf("upstream request line: got %q; want GET /ws?room=1 HTTP/1.1", hs.first)
			}
			for name, want := range map[string]string{
				"Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", "Host": "app.test",
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
			} {
				if got := hs.values(name); len(got) != 1 || got[0] != want {
					t.Errorf("upstream %s: got %q; want [%q]", name, got, want)
				}
			}
			if got, _ := hs.get("Upgrade"); !strings.EqualFold(got, "websocket") {
				t.Errorf("upstream Upgrade: got %q; want websocket", got)
			}
			if got := strings.ToLower(strings.Join(hs.values("Connection"), ",")); !strings.Contains(got, "upgrade") {
				t.Errorf("upstream Connection: got %q; want it to hold upgrade", got)
			}

			big := bytes.Repeat([]byte("0123456789"), 7000) // 64-bit length form
			for i, f := range []wsFrame{
				first,
				{fin: true, opcode: 0x2, payload: big},
				{fin: true, opcode: 0x9, payload: []byte("ping")},
			} {
				if i > 0 || !tc.eager {
					if err := writeWSFrame(c.conn, f, true); err != nil {
						t.Fatalf("write frame: %v", err)
					}
				}
				got, masked, err := readWSFrame(c.br)
				if err != nil {
					t.Fatalf("read echo of opcode %d: %v", f.opcode, err)
				}
				if masked || got.opcode != f.opcode || !got.fin || !bytes.Equal(got.payload, f.payload) {
					t.Errorf("echo: got opcode %d fin %v masked %v %d bytes; want opcode %d fin true unmasked %d bytes",
						got.opcode, got.fin, masked, len(got.payload), f.opcode, len(f.payload))
				}
			}
			closing := wsFrame{fin: true, opcode: 0x8, payload: []byte{0x03, 0xe8}} // 1000
			if err := writeWSFrame(c.conn, closing, true); err != nil {
				t.Fatalf("write close: %v", err)
			}
			got, _, err := readWSFrame(c.br)
			if err != nil || got.opcode != 0x8 || !bytes.Equal(got.payload, closing.payload) {
				t.Errorf("close answer: got opcode %d payload %x err %v; want a close frame 03e8", got.opcode, got.payload, err)
			}
			if !c.closedByPeer(time.Second) {
				t.Errorf("after the upstream closed: got the client connection open; want it closed")
			}
			up.mu.Lock()
			unmasked := up.unmasked
			up.mu.Unlock()
			if unmasked != 0 {
				t.Errorf("frames reaching the upstream unmasked: got %d; want 0 (bytes must pass unchanged)", unmasked)
			}
		})
	}
}

// TestE2EWebSocketRefused checks that a refused upgrade is relayed as the
// upstream's answer, without its hop-by-hop fields.
func TestE2EWebSocketRefused(t *testing.T) {
	up := startWSUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	resp := c.roundTrip("GET /refuse HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: " + wsKey() + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp.status() != 400 {
		t.Errorf("status: got %d; want 400", resp.status())
	}
	if string(resp.body) != "no upgrade here" {
		t.Errorf("body: got %q; want %q", resp.body, "no upgrade here")
	}
	if id, n := resp.get("X-Request-Id"); n != 1 || !uuidV4.MatchString(id) {
		t.Errorf("X-Request-Id: got %q (%d fields); want one UUID v4", id, n)
	}
	for _, name := range []string{"Keep-Alive", "X-Hint"} {
		if vs := resp.values(name); len(vs) > 0 {
			t.Errorf("client got %s: %q; want the upstream's hop-by-hop fields removed", name, vs)
		}
	}
}

// TestE2EWebSocketUpstreamDown checks the answer when the target of an
// upgrade cannot be reached.
func TestE2EWebSocketUpstreamDown(t *testing.T) {
	p := startProxy(t, oneUpstreamConfig(freeAddr(t), "", "timeouts: {connect: 1s}", ""))
	c := dialRaw(t, p.addr)
	resp := c.roundTrip("GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Key: " + wsKey() + "\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if resp.status() != 502 || string(resp.body) != string(bodyBadGateway) {
		t.Errorf("got %d %q; want 502 %q", resp.status(), resp.body, bodyBadGateway)
	}
}

// TestE2EWebSocketShutdown checks that Shutdown ends an open tunnel once its
// context is done.
func TestE2EWebSocketShutdown(t *testing.T) {
	up := startWSUpstream(t)
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	key := wsKey()
	if _, err := io.WriteString(c.conn, "GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := readRawHeader(c.br); err != nil || resp.status() != 101 {
		t.Fatalf("handshake: got %v %v; want 101", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.shutdown(ctx)
	elapsed := time.Since(start)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: got %v; want nil or a deadline error", err)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Shutdown took %v; want about the 300ms context", elapsed)
	}
	if !c.closedByPeer(2 * time.Second) {
		t.Errorf("tunnel after Shutdown: got open; want closed")
	}
}

// TestE2EWebSocketUpgradeDuringShutdown starts a handshake whose 101 is
// still on its way when Shutdown begins. Whether or not the upgrade
// completes, no tunnel may outlive Shutdown.
func TestE2EWebSocketUpgradeDuringShutdown(t *testing.T) {
	up := startWSUpstream(t)
	seen := make(chan struct{}, 1)
	up.mu.Lock()
	up.slowSeen = seen
	up.mu.Unlock()
	p := startProxy(t, oneUpstreamConfig(up.addr(), "", "", ""))
	c := dialRaw(t, p.addr)
	if _, err := io.WriteString(c.conn, "GET /slow101 HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Key: "+wsKey()+"\r\nSec-WebSocket-Version: 13\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-seen:
	case <-time.After(e2eTimeout):
		t.Fatal("the handshake never reached the upstream")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.shutdown(ctx)
	// Shutdown has returned: the client connection must be closed, after a
	// 101 or any other answer.
	if resp, err := readRawHeader(c.br); err == nil {
		t.Logf("answer during shutdown: %q", resp.first)
	}
	if !c.closedByPeer(time.Second) {
		t.Errorf("client connection after Shutdown returned: got open (a tunnel outlived Shutdown); want closed")
	}
}
