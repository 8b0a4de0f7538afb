package http1

import (
	"bufio"
	"net"
	"time"
)

// recordConn sits between a TLS client's socket and crypto/tls, and follows
// the framing of the TLS records the client sends (a 5-byte header whose
// last two bytes give the length of the body that follows).
//
// Why: crypto/tls may read several records from the socket at once and keeps
// the ones it has not decrypted yet in a buffer of its own. When a request
// burst ends, a pipelined request in such a record would never make the
// socket readable again, and the client would wait for the idle timeout. It
// can only be there if one socket read completed more than one record:
// crypto/tls reads from the socket only when the records it holds are not
// enough, so a read that completes a single record is all used up. Such reads
// set extra, and only then does the end of a burst look into crypto/tls's
// buffer (tlsHeld).
type recordConn struct {
	net.Conn
	hdr   [5]byte
	hdrN  int  // bytes of the current record's header read so far
	left  int  // bytes of the current record's body still to come
	extra bool // a read completed more than one record
	// cn, when set, is the connection whose progress timeouts the
	// socket's reads and writes keep to (see progress.go).
	cn *conn
}

func (r *recordConn) Read(p []byte) (n int, err error) {
	if r.cn != nil {
		n, err = r.cn.readRaw(r.Conn, p)
	} else {
		n, err = r.Conn.Read(p)
	}
	if n > 0 && r.scan(p[:n]) > 1 {
		r.extra = true
	}
	return n, err
}

func (r *recordConn) Write(p []byte) (int, error) {
	if r.cn != nil {
		return r.cn.sendRaw(p)
	}
	return r.Conn.Write(p)
}

// scan follows the record framing over b and returns how many records it
// completed.
func (r *recordConn) scan(b []byte) (ends int) {
	for len(b) > 0 {
		if r.left > 0 {
			k := min(r.left, len(b))
			r.left -= k
			b = b[k:]
			if r.left == 0 {
				ends++
			}
			continue
		}
		k := copy(r.hdr[r.hdrN:], b)
		r.hdrN += k
		b = b[k:]
		if r.hdrN == len(r.hdr) {
			r.hdrN = 0
			r.left = int(r.hdr[3])<<8 | int(r.hdr[4])
			if r.left == 0 {
				ends++
			}
		}
	}
	return ends
}

// tlsHeld reports whether crypto/tls holds the start of another request
// after a burst has used up br; it is then in br. It costs nothing unless
// the client's last reads completed more than one record.
func (cn *conn) tlsHeld(br *bufio.Reader) bool {
	if cn.rec == nil || !cn.rec.extra {
		return false
	}
	// A deadline in the past: crypto/tls decrypts a record it holds without
	// touching the socket, and otherwise fails at once (not for good: a
	// timeout does not break a tls.Conn).
	_ = cn.c.SetReadDeadline(aLongTimeAgo)
	_, err := br.Peek(1)
	cn.rdl = time.Time{}
	_ = cn.c.SetReadDeadline(cn.rdl)
	if err != nil {
		cn.rec.extra = false // it holds no whole record: nothing until the socket has more
		return false
	}
	return true // more records may follow this one
}
