package http2

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// frameConn is the client connection as x/net's server reads it. It
// replays the bytes a listener read before handing the connection over,
// and it reads the client's frames a header ahead of x/net to enforce the
// limits x/net lacks:
//
//   - RST_STREAM, PING and SETTINGS rates (rapid reset, control floods);
//   - CONTINUATION frames and bytes per header block (x/net bounds the
//     decoded size only, so an endless run of empty CONTINUATION frames,
//     or of HPACK instructions that decode to nothing, keeps its reader
//     busy forever);
//   - the lifetime stream budget: after the HEADERS that opens the last
//     stream, frameConn hands x/net a client GOAWAY, which x/net answers
//     with its own graceful GOAWAY naming that stream as the last;
//   - a graceful shutdown (goAway) the same way, once the reader is at a
//     frame boundary.
//
// A limit is enforced by returning http2.ConnectionError from Read at a
// frame boundary: x/net then sends GOAWAY with that code and closes the
// connection. Writes are coalesced (server_write.go). Everything but Read,
// Write, SetWriteDeadline and Close is the accepted connection's.
type frameConn struct {
	net.Conn
	cfg *Config

	// Read state: owned by the goroutine reading (x/net's preface reader,
	// then its frame reader), one at a time.
	replay     []byte  // bytes read before the handover, not yet re-read
	preface    int     // bytes of the client preface still to pass
	payload    uint32  // bytes of the current frame still to pass
	pending    []byte  // frame header (or injected frame) to hand out
	hdr        [9]byte // the frame header being read
	hdrLen     int     // bytes of hdr read so far
	inBlock    bool    // a header block awaits CONTINUATION frames
	contFrames int     // CONTINUATION frames in the current block
	blockBytes uint32  // bytes of the current header block
	maxStream  uint32  // highest stream the client opened
	streams    int     // streams the client opened
	goneAway   bool    // the GOAWAY was handed to x/net
	resets     bucket  // RST_STREAM frames
	control    bucket  // PING and SETTINGS frames
	now        func() time.Time

	started atomic.Bool // the first frame (SETTINGS) has been read
	goaway  atomic.Bool // a graceful GOAWAY is wanted
	kick    atomic.Bool // the read deadline was set to wake the reader

	countError func(string)

	wb      writeBehind // the client's writes (server_write.go)
	flushFn func()      // fc.flush, for Config.Run
}

// Frame types and flags as on the wire.
const (
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameContinuation = 0x9
	flagAck           = 0x1
	flagEndHeaders    = 0x4
	frameHeaderLen    = 9
)

// maxContinuationFrames bounds the CONTINUATION frames of one header
// block. Clients fill frames up to SETTINGS_MAX_FRAME_SIZE (16 KiB at
// least), so a block within MaxHeaderListSize needs a few; nghttp2 allows 8.
const maxContinuationFrames = 32

// clientGoAway is a GOAWAY as a client would send it (last stream 0,
// NO_ERROR): x/net answers it by starting its graceful shutdown.
var clientGoAway = [frameHeaderLen + 8]byte{0, 0, 8, 0x7}

// aLongTimeAgo is a read deadline that has passed: it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

func newFrameConn(c net.Conn, buffered []byte, cfg *Config) *frameConn {
	fc := &frameConn{
		Conn:    c,
		cfg:     cfg,
		replay:  buffered,
		preface: len(http2.ClientPreface),
		now:     time.Now,
	}
	r := float64(cfg.MaxResetsPerSecond)
	fc.resets = bucket{rate: r, burst: 2 * r, tokens: 2 * r}
	r = float64(cfg.MaxControlFramesPerSecond)
	fc.control = bucket{rate: r, burst: 2 * r, tokens: 2 * r}
	fc.wb.init()
	fc.flushFn = fc.flush
	return fc
}

// goAway asks for a graceful GOAWAY: it is handed to x/net as soon as its
// reader is at a frame boundary, woken from a blocked read if need be. A
// connection whose client has not sent its first frame is closed instead.
func (fc *frameConn) goAway() {
	if !fc.started.Load() {
		_ = fc.Conn.Close()
		return
	}
	fc.goaway.Store(true)
	fc.kick.Store(true)
	_ = fc.Conn.SetReadDeadline(aLongTimeAgo)
}

// Read hands x/net the client's bytes, a frame header only once it has
// been read whole and checked.
func (fc *frameConn) Read(p []byte) (int, error) {
	for {
		if len(fc.pending) > 0 {
			n := copy(p, fc.pending)
			fc.pending = fc.pending[n:]
			if len(fc.pending) == 0 {
				fc.pending = nil
			}
			return n, nil
		}
		if fc.preface > 0 {
			n, err := fc.readSome(p[:min(len(p), fc.preface)])
			fc.preface -= n
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if fc.payload > 0 {
			n, err := fc.readSome(p[:min(len(p), int(fc.payload))])
			fc.payload -= uint32(n)
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		// At a frame boundary.
		if fc.hdrLen == 0 && !fc.inBlock && !fc.goneAway && fc.goaway.Load() && fc.started.Load() {
			fc.goneAway = true
			fc.pending = clientGoAway[:]
			continue
		}
		n, err := fc.readSome(fc.hdr[fc.hdrLen:])
		fc.hdrLen += n
		if err != nil {
			return 0, err
		}
		if fc.hdrLen < frameHeaderLen {
			continue
		}
		fc.hdrLen = 0
		if err := fc.check(); err != nil {
			return 0, err
		}
		if fc.pending == nil {
			fc.pending = fc.hdr[:]
		}
	}
}

// readSome reads from the replayed bytes, then from the connection. A
// read woken by goAway returns (0, nil), so that Read looks at the
// boundary again.
func (fc *frameConn) readSome(p []byte) (int, error) {
	if len(fc.replay) > 0 {
		n := copy(p, fc.replay)
		fc.replay = fc.replay[n:]
		return n, nil
	}
	n, err := fc.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && fc.kick.Swap(false) {
		_ = fc.Conn.SetReadDeadline(time.Time{})
		return n, nil
	}
	if n > 0 && err != nil && err != io.EOF {
		err = nil // the error comes again on the next read
	}
	return n, err
}

// check applies the limits to the frame header in fc.hdr and sets up the
// pass of its payload.
func (fc *frameConn) check() error {
	h := &fc.hdr
	length := uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
	typ, flags := h[3], h[4]
	id := (uint32(h[5])<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8])) & (1<<31 - 1)
	fc.payload = length
	fc.started.Store(true)
	switch typ {
	case frameHeaders:
		fc.inBlock = flags&flagEndHeaders == 0
		fc.contFrames, fc.blockBytes = 0, length
		if err := fc.checkBlock(); err != nil {
			return err
		}
		if id > fc.maxStream && id%2 == 1 {
			fc.maxStream = id
			fc.streams++
			switch {
			case fc.streams == fc.cfg.MaxStreamsPerConnection:
				fc.goaway.Store(true) // handed over after this block
			case fc.streams > fc.cfg.MaxStreamsPerConnection+int(fc.cfg.MaxConcurrentStreams):
				// Far past the GOAWAY: x/net drops these streams, but
				// still decodes their headers.
				return fc.calm("stream_budget")
			}
		}
	case frameContinuation:
		fc.contFrames++
		fc.blockBytes += length
		if flags&flagEndHeaders != 0 {
			fc.inBlock = false
		}
		if fc.contFrames > maxContinuationFrames {
			return fc.calm("continuation_flood")
		}
		return fc.checkBlock()
	case frameRSTStream:
		if !fc.resets.take(fc.now()) {
			return fc.calm("rapid_reset")
		}
	case framePing:
		if flags&flagAck == 0 && !fc.control.take(fc.now()) {
			return fc.calm("control_flood")
		}
	case frameSettings:
		if flags&flagAck != 0 {
			break
		}
		if !fc.control.take(fc.now()) {
			return fc.calm("control_flood")
		}
		if id == 0 && length%6 == 0 && length <= maxSettingsBytes {
			return fc.dedupeSettings(length)
		}
	}
	return nil
}

// maxSettingsBytes is the largest SETTINGS frame x/net accepts: 100
// settings.
const maxSettingsBytes = 100 * 6

// dedupeSettings reads the payload of the SETTINGS frame whose header is
// in fc.hdr and, when it names a setting more than once, keeps only the
// last value of each: x/net hangs up on such a frame (PROTOCOL_ERROR),
// while RFC 9113 section 6.5.3 has the values processed in order, which
// leaves each setting at its last value. A frame with an invalid value is
// passed as it is, for x/net to refuse. The frame is then handed out from
// fc.pending.
func (fc *frameConn) dedupeSettings(length uint32) error {
	buf := make([]byte, frameHeaderLen+int(length))
	copy(buf, fc.hdr[:])
	if err := fc.readFull(buf[frameHeaderLen:]); err != nil {
		return err
	}
	fc.payload = 0
	fc.pending = buf
	p := buf[frameHeaderLen:]
	last := map[http2.SettingID]uint32{}
	dup := false
	for i := 0; i < len(p); i += 6 {
		s := http2.Setting{ID: http2.SettingID(uint16(p[i])<<8 | uint16(p[i+1])), Val: uint32(p[i+2])<<24 | uint32(p[i+3])<<16 | uint32(p[i+4])<<8 | uint32(p[i+5])}
		if s.Valid() != nil {
			return nil
		}
		if _, ok := last[s.ID]; ok {
			dup = true
		}
		last[s.ID] = s.Val
	}
	if !dup {
		return nil
	}
	out := buf[:frameHeaderLen]
	for i := 0; i < len(p); i += 6 {
		sid := http2.SettingID(uint16(p[i])<<8 | uint16(p[i+1]))
		v, ok := last[sid]
		if !ok {
			continue // kept at its first place already
		}
		delete(last, sid)
		out = append(out, byte(sid>>8), byte(sid), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	n := len(out) - frameHeaderLen
	out[0], out[1], out[2] = byte(n>>16), byte(n>>8), byte(n)
	fc.pending = out
	return nil
}

// readFull fills p from the client, through wake-ups.
func (fc *frameConn) readFull(p []byte) error {
	for len(p) > 0 {
		n, err := fc.readSome(p)
		p = p[n:]
		if err != nil {
			if err == io.EOF && len(p) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// checkBlock bounds the encoded bytes of a header block: twice the
// decoded size it may have, as an encoding never takes more than its
// fields (each of which counts 32 bytes more than its name and value).
func (fc *frameConn) checkBlock() error {
	if fc.blockBytes > 2*fc.cfg.MaxHeaderListSize+16<<10 {
		return fc.calm("header_block_size")
	}
	return nil
}

// calm counts the error and returns what makes x/net send GOAWAY
// ENHANCE_YOUR_CALM and close the connection.
func (fc *frameConn) calm(name string) error {
	if fc.countError != nil {
		fc.countError("conn_ENHANCE_YOUR_CALM_" + name)
	}
	return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
}

// tlsFrameConn is a frameConn over TLS: x/net asks it for the connection
// state (to check the TLS version and cipher suite, and for
// http.Request.TLS).
type tlsFrameConn struct {
	*frameConn
	tc connectionStater
}

func (c tlsFrameConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }

// bucket is a token bucket: rate tokens a second, up to burst.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

// take spends a token, reporting false when there is none.
func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
