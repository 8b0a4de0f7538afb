package http1

import (
	"bufio"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"

	"github.com/rampart-proxy/rampart/metrics"
)

// The PROXY protocol (HAProxy's, v1 and v2), read with pires/go-proxyproto
// on listeners that ask for it (Server.SetProxyProtocol).
//
// A connection from a peer that is not trusted is closed at accept, before
// anything is read. From a trusted peer, the header is read first, before
// TLS and before HTTP, under read_header_timeout; a connection whose header
// is missing, malformed or late is closed. The source address it carries
// becomes the connection's peer for every purpose (Peer, RemoteAddr, the
// per-IP connection count), as HAProxy and nginx do; a LOCAL header (the
// balancer's own health checks), v1's UNKNOWN and the families other than
// TCP over IPv4 and IPv6 keep the real peer, as the specification says.

// proxyHeaderBuffer is the size of the reader of the header: larger than a
// v1 header (107 bytes at most) and v2's address block for IPv6 (52), so
// that one read takes the common header whole; a v2 header with longer TLVs
// is read on in more reads.
const proxyHeaderBuffer = 256

// SetProxyProtocol makes the connections accepted from now on begin with
// a PROXY protocol header, allowed only from the peers in trusted. nil
// turns the PROXY protocol off.
func (s *Server) SetProxyProtocol(trusted []netip.Prefix) {
	if trusted == nil {
		s.proxy.Store(nil)
		return
	}
	s.proxy.Store(&trusted)
}

// proxiedConn is a connection on a listener that reads the PROXY
// protocol: its reads begin with what was read past the header, and its
// remote address is the one the header carries.
type proxiedConn struct {
	net.Conn
	pre    []byte   // read past the header, not yet consumed
	remote net.Addr // the header's source; nil: the peer's
}

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil // the header's reader is garbage now
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr is the client's address that the PROXY header carries, else
// the peer's.
func (c *proxiedConn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// trustedProxy reports whether ip may connect to a listener that reads the
// PROXY protocol from trusted.
func trustedProxy(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// readProxyHeader reads the connection's PROXY header, within
// read_header_timeout, and makes the address it carries the connection's
// peer. It reports false when the connection is to be closed.
func (cn *conn) readProxyHeader() bool {
	s := cn.s
	lim := s.lim.Load()
	if err := cn.setReadTimeout(lim.ReadHeaderTimeout.Std()); err != nil {
		return false
	}
	br := bufio.NewReaderSize(cn.proxied.Conn, proxyHeaderBuffer)
	h, err := proxyproto.Read(br)
	if err != nil && s.closing.Load() {
		return false // woken by Shutdown
	}
	if err != nil {
		s.Metrics.Refused(metrics.RefusedProxyHeader)
		s.Log.Info("PROXY protocol header refused", "listener", s.Name, "peer", cn.ip.String(), "error", err.Error())
		return false
	}
	if n := br.Buffered(); n > 0 {
		cn.proxied.pre, _ = br.Peek(n) // br is not used again: its buffer is the connection's now
	}
	// LOCAL, UNKNOWN, UDP and Unix sockets keep the peer.
	ip := cn.ip
	if src, _, ok := h.TCPAddrs(); ok && !h.Command.IsLocal() {
		if a, ok := netip.AddrFromSlice(src.IP); ok {
			ip = a.Unmap()
			cn.proxied.remote = src // read only by this goroutine and its handoffs
		}
	}
	return s.movePeer(cn, ip)
}

// movePeer makes ip the connection's peer and applies
// max_connections_per_ip to it: the connection counts against the client
// the header names in place of the balancer that connected (or against the
// balancer still, for LOCAL). It reports false, having counted the
// refusal, when ip is over the limit.
func (s *Server) movePeer(cn *conn, ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[cn.ip]--; s.perIP[cn.ip] <= 0 {
		delete(s.perIP, cn.ip)
	}
	if m := s.lim.Load().MaxConnectionsPerIP; m > 0 && s.perIP[ip] >= m {
		s.perIP[cn.ip]++ // forget takes it off
		s.Metrics.Refused(metrics.RefusedMaxConnectionsPerIP)
		return false
	}
	cn.ip = ip
	s.perIP[ip]++
	return true
}
