package http2

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/rampart-proxy/rampart/wire"
)

// gRPC over HTTP/2, as the proxy needs it: recognizing a gRPC request,
// honouring its grpc-timeout, and answering a gRPC client in gRPC terms
// when the proxy itself fails the request. The rules are those of
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md.

// The gRPC header fields.
const (
	HeaderTimeout = "grpc-timeout"
	HeaderStatus  = "grpc-status"
	HeaderMessage = "grpc-message"
)

// ContentType is the content-type of a gRPC message stream.
const ContentType = "application/grpc"

// Code is a gRPC status code.
type Code uint32

// The gRPC status codes (grpc/doc/statuscodes.md).
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// String returns the code's name as gRPC spells it ("UNAVAILABLE").
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "CODE(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// IsGRPC reports whether a request is gRPC: its content-type is
// application/grpc, alone or with a +format (application/grpc+proto,
// application/grpc+json) or parameters. gRPC-Web (application/grpc-web)
// is another protocol and is not.
func IsGRPC(h *fasthttp.RequestHeader) bool {
	return isGRPCContentType(h.ContentType())
}

func isGRPCContentType(ct []byte) bool {
	if len(ct) < len(ContentType) || !wire.EqualFold(ct[:len(ContentType)], ContentType) {
		return false
	}
	rest := ct[len(ContentType):]
	return len(rest) == 0 || rest[0] == '+' || rest[0] == ';'
}

// ParseTimeout parses a grpc-timeout value: at most 8 ASCII digits and a
// unit, H (hours), M (minutes), S (seconds), m (milliseconds), u
// (microseconds) or n (nanoseconds). It reports false for anything else.
// A value beyond time.Duration's range (99999999H) is the longest
// Duration.
func ParseTimeout(v []byte) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0') // 8 digits cannot overflow
	}
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// CodeForStatus is the gRPC status that answers a gRPC client in place of
// the HTTP status the proxy would answer with (its own failures: no
// route, WAF block, rate limit, unreachable upstream...). It follows
// gRPC's "HTTP to gRPC Status Code Mapping" (doc/http-grpc-status-mapping.md)
// except where the proxy knows more than a status says: a 504 is the
// proxy's upstream timeout (DEADLINE_EXCEEDED, not UNAVAILABLE), a 429 its
// rate limit and a 413 or 431 its size limits (RESOURCE_EXHAUSTED, so a
// client does not retry at once as UNAVAILABLE invites).
func CodeForStatus(status int) Code {
	switch status {
	case fasthttp.StatusOK:
		return OK
	case fasthttp.StatusBadRequest:
		return Internal
	case fasthttp.StatusUnauthorized:
		return Unauthenticated
	case fasthttp.StatusForbidden:
		return PermissionDenied
	case fasthttp.StatusNotFound, fasthttp.StatusMethodNotAllowed, fasthttp.StatusNotImplemented:
		return Unimplemented
	case fasthttp.StatusRequestTimeout, fasthttp.StatusGatewayTimeout:
		return DeadlineExceeded
	case fasthttp.StatusRequestEntityTooLarge, fasthttp.StatusRequestHeaderFieldsTooLarge,
		fasthttp.StatusTooManyRequests:
		return ResourceExhausted
	case fasthttp.StatusInternalServerError:
		return Internal
	case fasthttp.StatusBadGateway, fasthttp.StatusServiceUnavailable:
		return Unavailable
	}
	return Unknown
}

// CodeForError is the gRPC status that answers a failed RoundTrip.
func CodeForError(err error) Code {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, ErrTimeout):
		return DeadlineExceeded
	case errors.Is(err, ErrCanceled):
		return Canceled
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrRequestBody):
		return Internal
	}
	return Unavailable // ErrConnect, ErrReset, ErrBadResponse
}

// TrailersOnly turns resp into a gRPC Trailers-Only response: status 200,
// content-type application/grpc, grpc-status and grpc-message (percent-
// encoded) among the header fields, and no body. Other header fields the
// proxy set stay (Retry-After, Strict-Transport-Security); those that
// describe a body go.
func TrailersOnly(resp *fasthttp.Response, code Code, msg string) {
	resp.ResetBody()
	resp.SetStatusCode(fasthttp.StatusOK)
	resp.Header.SetContentType(ContentType)
	resp.Header.Del(fasthttp.HeaderContentEncoding)
	resp.Header.Del(fasthttp.HeaderTransferEncoding)
	resp.Header.SetContentLength(0)
	resp.Header.Set(HeaderStatus, strconv.FormatUint(uint64(code), 10))
	if msg == "" {
		resp.Header.Del(HeaderMessage)
		return
	}
	resp.Header.SetBytesV(HeaderMessage, AppendMessage(nil, msg))
}

// AnswerGRPC rewrites a proxy-side answer, an HTTP status and a short text
// body, as a Trailers-Only response whose code is CodeForStatus of the
// status and whose message is the text (its first line). A 2xx answer
// (a respond route) is left alone.
func AnswerGRPC(resp *fasthttp.Response) {
	status := resp.StatusCode()
	if status >= 200 && status < 300 {
		return
	}
	msg := resp.Body()
	if i := bytes.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	TrailersOnly(resp, CodeForStatus(status), string(bytes.TrimSpace(msg)))
}

// StatusFields returns grpc-status and grpc-message (percent-encoded; left
// out when empty) as trailer fields.
func StatusFields(code Code, msg string) []wire.Field {
	f := []wire.Field{{Name: []byte(HeaderStatus), Value: strconv.AppendUint(nil, uint64(code), 10)}}
	if msg != "" {
		f = append(f, wire.Field{Name: []byte(HeaderMessage), Value: AppendMessage(nil, msg)})
	}
	return f
}

// AppendMessage appends msg percent-encoded as grpc-message wants: bytes
// outside printable ASCII (0x20-0x7E) and '%' itself become %XX, so UTF-8
// survives header rules.
func AppendMessage(dst []byte, msg string) []byte {
	const hex = "0123456789ABCDEF"
	for i := range len(msg) {
		c := msg[i]
		if c < 0x20 || c > 0x7E || c == '%' {
			dst = append(dst, '%', hex[c>>4], hex[c&0xF])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}
