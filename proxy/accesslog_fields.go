package proxy

import (
	"bytes"
	"crypto/tls"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rampart-proxy/rampart/config"
	"github.com/rampart-proxy/rampart/wire"
)

// logField writes one field of a JSON access log line. The fields, their
// order and their documentation are config.AccessLogFields (docs/logs.md);
// logAppenders gives each its writer.
type logField struct {
	name  string
	key   []byte // "name":
	timed bool   // reads the upstream's timing (x.up)
	add   func(dst []byte, x *exchange) []byte
}

// logFields are config.AccessLogFields with their writers, in order.
// bytes_out and duration_ms, known once the body was sent, are written by
// appendSuffix (add is nil).
var logFields = func() []logField {
	fs := make([]logField, len(config.AccessLogFields))
	for i, f := range config.AccessLogFields {
		add, ok := logAppenders[f.Name]
		if !ok && f.Name != "bytes_out" && f.Name != "duration_ms" {
			panic("proxy: access log field " + f.Name + " has no writer")
		}
		fs[i] = logField{name: f.Name, key: []byte(`"` + f.Name + `":`), add: add,
			timed: f.Name == "upstream_connect_ms" || f.Name == "upstream_response_ms"}
	}
	return fs
}()

var logAppenders = map[string]func(dst []byte, x *exchange) []byte{
	"time": func(dst []byte, x *exchange) []byte {
		dst = append(dst, '"')
		dst = x.start.UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	},
	"request_id": func(dst []byte, x *exchange) []byte { return appendJSONBytes(dst, x.reqID) },
	"client_ip": func(dst []byte, x *exchange) []byte {
		dst = append(dst, '"')
		dst = append(dst, x.client...)
		return append(dst, '"')
	},
	"listener": func(dst []byte, x *exchange) []byte { return appendJSONString(dst, x.l.name) },
	"protocol": func(dst []byte, x *exchange) []byte {
		dst = append(dst, '"')
		dst = appendProtocol(dst, x)
		return append(dst, '"')
	},
	"tls_version": func(dst []byte, x *exchange) []byte {
		v := tlsVersionName(x.st)
		if v == "" {
			return append(dst, "null"...)
		}
		return appendJSONString(dst, v)
	},
	"method": func(dst []byte, x *exchange) []byte { return appendJSONBytes(dst, x.ctx.Method()) },
	"host":   func(dst []byte, x *exchange) []byte { return appendJSONBytes(dst, x.ctx.Host()) },
	"path":   func(dst []byte, x *exchange) []byte { return appendJSONBytes(dst, x.ctx.Path()) },
	// The request target as received (path and query undecoded), and its
	// query; path above is what the router matched.
	"request_uri": func(dst []byte, x *exchange) []byte { return x.redact.appendURI(dst, x.received) },
	"query": func(dst []byte, x *exchange) []byte {
		dst = append(dst, '"')
		if _, query, ok := bytes.Cut(x.received, questionMark); ok {
			dst = x.redact.appendQuery(dst, query)
		}
		return append(dst, '"')
	},
	"user_agent": func(dst []byte, x *exchange) []byte {
		return appendJSONBytes(dst, x.ctx.Request.Header.UserAgent())
	},
	"referer": func(dst []byte, x *exchange) []byte {
		return appendJSONBytes(dst, x.ctx.Request.Header.Referer())
	},
	"status": func(dst []byte, x *exchange) []byte {
		return strconv.AppendInt(dst, int64(x.ctx.Response.StatusCode()), 10)
	},
	"route": func(dst []byte, x *exchange) []byte {
		if x.rt == nil {
			return append(dst, "null"...)
		}
		return appendJSONString(dst, x.rt.name)
	},
	"upstream": func(dst []byte, x *exchange) []byte {
		upstream, _ := x.names()
		return appendJSONString(dst, upstream)
	},
	"target": func(dst []byte, x *exchange) []byte {
		_, target := x.names()
		return appendJSONString(dst, target)
	},
	"upstream_status": func(dst []byte, x *exchange) []byte {
		if x.up.status == 0 {
			return append(dst, "null"...)
		}
		return strconv.AppendInt(dst, int64(x.up.status), 10)
	},
	"upstream_tries": func(dst []byte, x *exchange) []byte { return strconv.AppendInt(dst, int64(x.up.tries), 10) },
	"upstream_connect_ms": func(dst []byte, x *exchange) []byte {
		if !x.up.hasConnect {
			return append(dst, "null"...)
		}
		return appendMillis(dst, x.up.connect)
	},
	"upstream_response_ms": func(dst []byte, x *exchange) []byte {
		if x.up.status == 0 {
			return append(dst, "null"...)
		}
		return appendMillis(dst, x.up.response)
	},
	"waf": func(dst []byte, x *exchange) []byte {
		if x.verdict == nil {
			return append(dst, "null"...)
		}
		dst = append(dst, '"')
		dst = append(dst, x.verdict.Outcome().String()...)
		return append(dst, '"')
	},
	"waf_rules": func(dst []byte, x *exchange) []byte {
		dst = append(dst, '[')
		dst = x.verdict.AppendRuleIDs(dst, ',')
		return append(dst, ']')
	},
	"cache": func(dst []byte, x *exchange) []byte {
		s := x.cacheX.status()
		if s == "" {
			return append(dst, "null"...)
		}
		return appendJSONString(dst, s)
	},
	"bytes_in": func(dst []byte, x *exchange) []byte { return strconv.AppendInt(dst, requestBytes(x), 10) },
}

// requestBytes is the request body's size for the log: its Content-Length,
// or the length of a chunked body read whole; 0 for none or a streamed
// chunked body.
func requestBytes(x *exchange) int64 {
	req := &x.ctx.Request
	if cl := req.Header.ContentLength(); cl >= 0 {
		return int64(cl)
	}
	if !req.IsBodyStream() {
		return int64(len(req.Body()))
	}
	return 0
}

// appendProtocol appends the client's protocol as nginx's
// $server_protocol writes it: HTTP/1.0 or HTTP/1.1 as the request line
// says, or HTTP/2.0.
func appendProtocol(dst []byte, x *exchange) []byte {
	if x.st.Protocol() == wire.HTTP2 {
		return append(dst, "HTTP/2.0"...)
	}
	if x.http10 {
		return append(dst, "HTTP/1.0"...)
	}
	return append(dst, "HTTP/1.1"...)
}

// tlsVersioner is a wire.Stream that knows its connection's TLS version.
type tlsVersioner interface{ TLSVersion() uint16 }

// tlsVersionName names the TLS version of st's connection as nginx's
// $ssl_protocol does; "" without TLS.
func tlsVersionName(st wire.Stream) string {
	tv, ok := st.(tlsVersioner)
	if !ok {
		return ""
	}
	switch tv.TLSVersion() {
	case 0:
		return ""
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return "unknown"
}

// upstreamTry is what the access log and traces know of a request's
// exchanges with its targets.
type upstreamTry struct {
	tries      int           // targets tried
	status     int           // the last try's answer; 0: none
	connect    time.Duration // the last try's wait for a connection (hasConnect)
	response   time.Duration // the last try's start to its response header (timed)
	hasConnect bool          // connect was measured (HTTP/1.1, timed)
}

// connectTimer is where an HTTP/1.1 try records its wait for a connection,
// or nil when nothing reads it.
func (u *upstreamTry) connectTimer(timed bool) *time.Duration {
	if !timed {
		return nil
	}
	u.hasConnect = true
	return &u.connect
}

// record counts a try that began at start (zero: untimed) and ended with
// status, or err.
func (u *upstreamTry) record(start time.Time, status int, err error) {
	u.tries++
	u.status = 0
	if err == nil {
		u.status = status
	}
	if !start.IsZero() {
		u.response = time.Since(start)
	}
}

// The combined format: Apache's and nginx's
//
//	client - user [time] "request line" status bytes "referer" "user-agent"
//
// with user "-" (no authenticated user is known), Referer and User-Agent
// "-" when absent, the time in UTC, the
// request target as received (query values redacted as in the JSON
// format), and `"`, `\` and bytes outside printable ASCII written \xHH as
// nginx does.
func appendCombinedPrefix(dst []byte, x *exchange) []byte {
	h := &x.ctx.Request.Header
	dst = append(dst, x.client...)
	dst = append(dst, " - - ["...)
	dst = x.start.UTC().AppendFormat(dst, "02/Jan/2006:15:04:05 -0700")
	dst = append(dst, `] "`...)
	dst = appendCLF(dst, x.ctx.Method())
	dst = append(dst, ' ')
	path, query, hasQuery := bytes.Cut(x.received, questionMark)
	dst = appendCLF(dst, path)
	if hasQuery {
		dst = append(dst, '?')
		dst = x.redact.appendQueryWith(dst, query, appendCLF)
	}
	dst = append(dst, ' ')
	dst = appendProtocol(dst, x)
	dst = append(dst, `" `...)
	dst = strconv.AppendInt(dst, int64(x.ctx.Response.StatusCode()), 10)
	// The bytes sent go here, once known: appendCombinedSuffix moves them
	// in before the tail, which has exactly four quotes.
	dst = append(dst, ` "`...)
	dst = appendCLFOrDash(dst, h.Referer())
	dst = append(dst, `" "`...)
	dst = appendCLFOrDash(dst, h.UserAgent())
	return append(dst, '"')
}

// appendCLFOrDash is appendCLF, with "-" for an empty value as nginx
// writes it.
func appendCLFOrDash(dst, b []byte) []byte {
	if len(b) == 0 {
		return append(dst, '-')
	}
	return appendCLF(dst, b)
}

// appendCombinedSuffix puts the bytes sent in their place, before the
// Referer and User-Agent that appendCombinedPrefix ended the line with:
// appended, then rotated in, without a copy of the line.
func appendCombinedSuffix(dst []byte, bytesOut int64) []byte {
	tail, quotes := len(dst), 0
	for tail > 0 && quotes < 4 {
		tail--
		if dst[tail] == '"' {
			quotes++
		}
	}
	tail-- // the space before the Referer
	n := len(dst)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, bytesOut, 10)
	rotate(dst[tail:], len(dst)-n)
	return append(dst, '\n')
}

// rotate moves the last k bytes of b to its front.
func rotate(b []byte, k int) {
	reverse(b)
	reverse(b[:k])
	reverse(b[k:])
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// appendCLF appends b escaped as nginx escapes log variables: `"`, `\` and
// bytes outside printable ASCII as \xHH. A line of the combined format
// then never holds a raw quote inside a quoted field, nor a line break.
func appendCLF(dst, b []byte) []byte {
	for _, c := range b {
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// appendJSONEscaped appends b escaped for a JSON string, without quotes.
func appendJSONEscaped(dst, b []byte) []byte { return appendJSONText(dst, b, utf8.DecodeRune) }
