package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rampart-proxy/rampart/config"
)

// logSink is where access log lines go: a buffer appended to under a short
// lock and flushed by a ticker, so a request never waits on the disk unless
// the buffer is full. A reload that keeps the path keeps the sink.
type logSink struct {
	mu     sync.Mutex // guards w
	w      *bufio.Writer
	closer io.Closer // nil for stdout and stderr
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once // guards the closing of stop
}

// accessLog writes one line per request, in the snapshot's format, to its
// sink. Lines are built by the request (no shared state).
type accessLog struct {
	*logSink
	// combined says the line is in the combined format; else JSON with
	// fields (indices into logFields, in their order), bytes_out and
	// duration_ms written last when out and dur say so.
	combined bool
	fields   []int
	out, dur bool
	// timed says a field reads the upstream's timing (x.up).
	timed bool
}

// openAccessLog opens the log cfg describes: path "stdout", "stderr", "off"
// or a file. It returns nil for "off".
func openAccessLog(cfg config.AccessLog) (*accessLog, error) {
	var out io.Writer
	var closer io.Closer
	switch cfg.Path {
	case "off":
		return nil, nil
	case "", "stdout":
		out = os.Stdout
	case "stderr":
		out = os.Stderr
	default:
		f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("access log: %w", err)
		}
		out, closer = f, f
	}
	a := &logSink{w: bufio.NewWriterSize(out, 64<<10), closer: closer, stop: make(chan struct{}), done: make(chan struct{})}
	go a.flushLoop()
	return newAccessLog(a, cfg), nil
}

// reformat returns a log writing to a's sink in cfg's format: a reload that
// keeps the path keeps the file open. A nil a stays nil ("off").
func (a *accessLog) reformat(cfg config.AccessLog) *accessLog {
	if a == nil {
		return nil
	}
	return newAccessLog(a.logSink, cfg)
}

func newAccessLog(sink *logSink, cfg config.AccessLog) *accessLog {
	a := &accessLog{logSink: sink, combined: cfg.Format == config.AccessLogCombined}
	if a.combined {
		return a
	}
	want := func(name string) bool { return len(cfg.Fields) == 0 || slices.Contains(cfg.Fields, name) }
	for i, f := range logFields {
		if !want(f.name) {
			continue
		}
		switch f.name {
		case "bytes_out":
			a.out = true
		case "duration_ms":
			a.dur = true
		default:
			a.fields = append(a.fields, i)
			a.timed = a.timed || f.timed
		}
	}
	return a
}

// shares reports whether a and b write to the same sink (nil: off).
func (a *accessLog) shares(b *accessLog) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.logSink == b.logSink
}

func (a *logSink) flushLoop() {
	defer close(a.done)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.mu.Lock()
			_ = a.w.Flush()
			a.mu.Unlock()
		case <-a.stop:
			return
		}
	}
}

// Close flushes and closes the log's sink.
func (a *accessLog) Close() error {
	if a == nil {
		return nil
	}
	return a.logSink.close()
}

func (a *logSink) close() error {
	closed := false
	a.once.Do(func() { close(a.stop); closed = true })
	if !closed {
		return nil
	}
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.w.Flush()
	if a.closer != nil {
		if cerr := a.closer.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

func (a *logSink) writeLine(line []byte) {
	a.mu.Lock()
	_, _ = a.w.Write(line)
	a.mu.Unlock()
}

// appendPrefix appends every field known when the response headers are
// ready; appendSuffix closes the line once the body has been sent.
func (a *accessLog) appendPrefix(dst []byte, x *exchange) []byte {
	if a.combined {
		return appendCombinedPrefix(dst, x)
	}
	dst = append(dst, '{')
	for i, fi := range a.fields {
		f := &logFields[fi]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, f.key...)
		dst = f.add(dst, x)
	}
	return dst
}

func (a *accessLog) appendSuffix(dst []byte, bytesOut int64, d time.Duration) []byte {
	if a.combined {
		return appendCombinedSuffix(dst, bytesOut)
	}
	if a.out {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
		dst = append(dst, `"bytes_out":`...)
		dst = strconv.AppendInt(dst, bytesOut, 10)
	}
	if a.dur {
		if dst[len(dst)-1] != '{' {
			dst = append(dst, ',')
		}
		dst = append(dst, `"duration_ms":`...)
		dst = appendMillis(dst, d)
	}
	return append(dst, "}\n"...)
}

// appendMillis appends d in milliseconds with three decimals: the unit of
// every duration of the access log (the _ms fields).
func appendMillis(dst []byte, d time.Duration) []byte {
	return strconv.AppendFloat(dst, float64(d.Microseconds())/1000, 'f', 3, 64)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// so a hostile request cannot break the line's syntax.
func appendJSONString(dst []byte, s string) []byte {
	return appendJSON(dst, s, utf8.DecodeRuneInString)
}

// appendJSONBytes is appendJSONString for a byte slice.
func appendJSONBytes(dst, b []byte) []byte {
	return appendJSON(dst, b, utf8.DecodeRune)
}

func appendJSON[T string | []byte](dst []byte, s T, decode func(T) (rune, int)) []byte {
	dst = append(dst, '"')
	dst = appendJSONText(dst, s, decode)
	return append(dst, '"')
}

// appendJSONText appends s escaped for a JSON string, without the quotes.
func appendJSONText[T string | []byte](dst []byte, s T, decode func(T) (rune, int)) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, `\u00`...)
				dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := decode(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// queryRedactor hides the values of named query parameters (access_log
// redact_query) in the access log: an URL's query often carries a token, a
// password or a signature that an access log must not spread.
type queryRedactor struct {
	names [][]byte // lower case
}

// redactedParam replaces a hidden value.
const redactedParam = "[redacted]"

var (
	questionMark = []byte("?")
	ampersand    = []byte("&")
	equalsSign   = []byte("=")
)

// newQueryRedactor compiles names; nil (a Config built in code without
// defaults) means the default list.
func newQueryRedactor(names []string) *queryRedactor {
	if names == nil {
		names = strings.Fields(config.DefaultRedactQuery)
	}
	r := &queryRedactor{}
	for _, n := range names {
		r.names = append(r.names, []byte(strings.ToLower(n)))
	}
	return r
}

// appendURI appends a request target as a JSON string, with the values of
// the parameters to hide replaced.
func (r *queryRedactor) appendURI(dst, uri []byte) []byte {
	dst = append(dst, '"')
	path, query, hasQuery := bytes.Cut(uri, questionMark)
	dst = appendJSONText(dst, path, utf8.DecodeRune)
	if hasQuery {
		dst = append(dst, '?')
		dst = r.appendQuery(dst, query)
	}
	return append(dst, '"')
}

// appendQuery appends a query escaped for a JSON string (without quotes),
// with the values of the parameters to hide replaced. The rest is kept
// byte for byte.
func (r *queryRedactor) appendQuery(dst, q []byte) []byte {
	return r.appendQueryWith(dst, q, appendJSONEscaped)
}

// appendQueryWith is appendQuery with the escaping of a log format.
func (r *queryRedactor) appendQueryWith(dst, q []byte, escape func(dst, b []byte) []byte) []byte {
	for len(q) > 0 {
		param, rest, more := bytes.Cut(q, ampersand)
		name, _, hasValue := bytes.Cut(param, equalsSign)
		if hasValue && r.hides(name) {
			dst = escape(dst, name)
			dst = append(dst, '=')
			dst = append(dst, redactedParam...)
		} else {
			dst = escape(dst, param)
		}
		if more {
			dst = append(dst, '&')
		}
		q = rest
	}
	return dst
}

// hides reports whether the parameter named name (as sent: percent-encoded,
// + for a space) is one whose value is hidden.
func (r *queryRedactor) hides(name []byte) bool {
	if r == nil {
		return false
	}
	for _, n := range r.names {
		if paramNameIs(name, n) {
			return true
		}
	}
	return false
}

// paramNameIs reports whether the encoded parameter name is want (lower
// case) once decoded, ignoring ASCII case.
func paramNameIs(name, want []byte) bool {
	j := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]):
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
		}
		c = lower(c)
		if j >= len(want) || c != want[j] {
			return false
		}
		j++
	}
	return j == len(want)
}
