// Command evloop is a measuring stick for bench/run.sh (proxy "evloop"), not
// a proxy to deploy: one goroutine locked to its thread runs an epoll loop
// over non-blocking sockets, with fasthttp's header parser and writer, and
// forwards each request to one upstream over keep-alive connections. It
// sets the proxy headers Rampart sets (X-Forwarded-For, -Proto, -Host,
// X-Request-Id) and nothing else: no routing, limits, timeouts, logs, or
// chunked bodies (a request or response without Content-Length closes the
// connection). It answers one question: what Go with fasthttp's parsers costs
// per request without goroutines, the runtime poller and net.Conn, against
// bench/bareproxy (fasthttp's server and client) and Rampart.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"log"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// maxMessage bounds a request or response, header and body, held whole.
const maxMessage = 1 << 20

// client is a downstream connection; up is its upstream while a request is
// in flight.
type client struct {
	fd   int
	in   []byte // bytes read, not yet forwarded
	out  []byte // bytes to write, not yet accepted by the socket
	peer []byte // the client's address, for X-Forwarded-For
	up   *upconn
}

// upconn is a keep-alive connection to the upstream.
type upconn struct {
	fd  int
	in  []byte
	out []byte
	cl  *client
}

type loop struct {
	ep      int
	clients map[int]*client
	ups     map[int]*upconn
	idle    []*upconn
	upAddr  syscall.SockaddrInet4
	buf     []byte // what one read gets
	req     fasthttp.RequestHeader
	resp    fasthttp.ResponseHeader
	br      *bufio.Reader
	rd      bytes.Reader
	xff     []byte
	id      [16]byte
	seq     uint64
}

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func (l *loop) ctl(op, fd int, events uint32) {
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.ep, op, fd, &ev); err != nil {
		log.Fatalf("epoll_ctl: %v", err)
	}
}

// send writes out to fd; what the socket does not take waits for EPOLLOUT.
func (l *loop) send(fd int, out *[]byte, p []byte) bool {
	if len(*out) > 0 {
		*out = append(*out, p...)
		return true
	}
	for len(p) > 0 {
		n, e := rawWrite(fd, p)
		if e == syscall.EAGAIN {
			*out = append((*out)[:0], p...)
			l.ctl(syscall.EPOLL_CTL_MOD, fd, syscall.EPOLLIN|syscall.EPOLLOUT)
			return true
		}
		if e != 0 {
			return false
		}
		p = p[n:]
	}
	return true
}

// flush writes what waited for EPOLLOUT.
func (l *loop) flush(fd int, out *[]byte) bool {
	for len(*out) > 0 {
		n, e := rawWrite(fd, *out)
		if e == syscall.EAGAIN {
			return true
		}
		if e != 0 {
			return false
		}
		*out = (*out)[n:]
	}
	*out = (*out)[:0]
	l.ctl(syscall.EPOLL_CTL_MOD, fd, syscall.EPOLLIN)
	return true
}

func (l *loop) closeClient(c *client) {
	if c.up != nil { // its answer will not be read: the upstream connection is out of step
		l.closeUp(c.up)
	}
	delete(l.clients, c.fd)
	_ = syscall.Close(c.fd)
}

func (l *loop) closeUp(u *upconn) {
	delete(l.ups, u.fd)
	_ = syscall.Close(u.fd)
	if u.cl != nil {
		u.cl.up = nil
	}
}

func (l *loop) upstream() *upconn {
	if n := len(l.idle); n > 0 {
		u := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return u
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if err := syscall.Connect(fd, &l.upAddr); err != nil { // blocking: a new connection is rare
		_ = syscall.Close(fd)
		return nil
	}
	_ = syscall.SetNonblock(fd, true)
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	u := &upconn{fd: fd}
	l.ups[fd] = u
	l.ctl(syscall.EPOLL_CTL_ADD, fd, syscall.EPOLLIN)
	return u
}

// message returns the length of the whole message at the start of b and of
// its body once it has arrived (size 0 while it has not, -1 if it cannot be
// forwarded), with its header parsed by parse. bodyLen is the parsed
// Content-Length; -2 (none) means no body for a request, and is refused for
// a response (its body would end only with the connection).
func message(b []byte, parse func(*bufio.Reader) error, br *bufio.Reader, rd *bytes.Reader, bodyLen func() int, request bool) (size, body int) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxMessage {
			return -1, 0
		}
		return 0, 0
	}
	rd.Reset(b[:end+4])
	br.Reset(rd)
	if parse(br) != nil {
		return -1, 0
	}
	body = bodyLen()
	if body == -2 && request {
		body = 0
	}
	if body < 0 || end+4+body > maxMessage {
		return -1, 0
	}
	if len(b) < end+4+body {
		return 0, 0
	}
	return end + 4 + body, body
}

func (l *loop) onClient(c *client) {
	n, e := rawRead(c.fd, l.buf)
	if e == syscall.EAGAIN {
		return
	}
	if e != 0 || n == 0 {
		l.closeClient(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	l.forward(c)
}

// forward sends the client's next whole request upstream.
func (l *loop) forward(c *client) {
	if c.up != nil || len(c.in) == 0 {
		return // one request at a time; a pipelined one waits for this answer
	}
	size, body := message(c.in, l.req.Read, l.br, &l.rd, l.req.ContentLength, true)
	if size == 0 {
		return
	}
	if size < 0 {
		l.closeClient(c)
		return
	}
	hdrLen := size - body
	l.xff = append(l.xff[:0], l.req.Peek("X-Forwarded-For")...)
	if len(l.xff) > 0 {
		l.xff = append(l.xff, ", "...)
	}
	l.xff = append(l.xff, c.peer...)
	l.req.SetBytesV("X-Forwarded-For", l.xff)
	l.req.Set("X-Forwarded-Proto", "http")
	l.req.SetBytesV("X-Forwarded-Host", l.req.Host())
	l.seq++
	var idb [32]byte
	binary.BigEndian.PutUint64(l.id[:8], l.seq) // a unique id, as long as Rampart's
	hex.Encode(idb[:], l.id[:])
	l.req.SetBytesV("X-Request-Id", idb[:])
	u := l.upstream()
	if u == nil {
		l.closeClient(c)
		return
	}
	u.cl, c.up = c, u
	msg := l.req.AppendBytes(l.buf[:0])
	msg = append(msg, c.in[hdrLen:size]...)
	c.in = append(c.in[:0], c.in[size:]...)
	if !l.send(u.fd, &u.out, msg) {
		l.closeUp(u)
		l.closeClient(c)
	}
}

func (l *loop) onUpstream(u *upconn) {
	n, e := rawRead(u.fd, l.buf)
	if e == syscall.EAGAIN {
		return
	}
	if e != 0 || n == 0 {
		c := u.cl
		l.closeUp(u)
		if c != nil {
			l.closeClient(c)
		}
		return
	}
	u.in = append(u.in, l.buf[:n]...)
	size, body := message(u.in, l.resp.Read, l.br, &l.rd, l.resp.ContentLength, false)
	if size == 0 {
		return
	}
	c := u.cl
	if size < 0 || c == nil {
		l.closeUp(u)
		if c != nil {
			l.closeClient(c)
		}
		return
	}
	hdrLen := size - body
	msg := l.resp.AppendBytes(l.buf[:0])
	msg = append(msg, u.in[hdrLen:size]...)
	u.in = append(u.in[:0], u.in[size:]...)
	u.cl, c.up = nil, nil
	if len(u.in) == 0 {
		l.idle = append(l.idle, u)
	} else {
		l.closeUp(u) // it sent more than one answer
	}
	if !l.send(c.fd, &c.out, msg) {
		l.closeClient(c)
		return
	}
	l.forward(c)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18087", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:18080", "upstream IPv4 host:port")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*upstream)
	if err != nil || !ap.Addr().Is4() {
		log.Fatalf("-upstream: want an IPv4 host:port, got %q", *upstream)
	}
	runtime.LockOSThread()
	ln, err := net.Listen("tcp4", *addr)
	if err != nil {
		log.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		log.Fatal(err)
	}
	lfd := int(f.Fd())
	_ = syscall.SetNonblock(lfd, true)
	l := &loop{
		clients: map[int]*client{},
		ups:     map[int]*upconn{},
		upAddr:  syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()},
		buf:     make([]byte, maxMessage+64<<10),
		br:      bufio.NewReaderSize(nil, 64<<10),
	}
	l.resp.DisableNormalizing() // relay the upstream's header names as sent, as Rampart does
	if l.ep, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC); err != nil {
		log.Fatal(err)
	}
	l.ctl(syscall.EPOLL_CTL_ADD, lfd, syscall.EPOLLIN)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				for {
					nfd, sa, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
					if err != nil {
						break
					}
					_ = syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
					c := &client{fd: nfd}
					if sa4, ok := sa.(*syscall.SockaddrInet4); ok {
						c.peer = []byte(netip.AddrFrom4(sa4.Addr).String())
					}
					l.clients[nfd] = c
					l.ctl(syscall.EPOLL_CTL_ADD, nfd, syscall.EPOLLIN)
				}
				continue
			}
			if c := l.clients[fd]; c != nil {
				if ev.Events&syscall.EPOLLOUT != 0 && !l.flush(fd, &c.out) {
					l.closeClient(c)
					continue
				}
				if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					l.onClient(c)
				}
			} else if u := l.ups[fd]; u != nil {
				if ev.Events&syscall.EPOLLOUT != 0 && !l.flush(fd, &u.out) {
					l.closeUp(u)
					continue
				}
				if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
					l.onUpstream(u)
				}
			}
		}
	}
}
