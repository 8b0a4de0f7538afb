package eval

import (
	"strconv"
	"strings"
)

// Case is one labelled request of the evaluation.
type Case struct {
	// Name identifies the case in reports: "sqli/json/base64#17" (class,
	// placement, encoding and the payload's line in its class file) or
	// "FILE: NAME" for a written benign request.
	Name string
	// Attack says the request must be blocked; a benign one must pass.
	Attack bool
	// Class is the attack class; "benign" for benign cases.
	Class string
	// Placement is where the payload is (Place*), or "request" for a
	// benign request written whole.
	Placement string
	// Encoding is how the payload is encoded (Enc*).
	Encoding string
	// Payload is the payload or benign value placed, as the corpus has it.
	Payload string
	// Req is the request sent.
	Req Request
}

// Request is an HTTP/1.1 request, kept as parts so that it can be written
// to a socket or parsed in process.
type Request struct {
	Method string
	// Target is the request target as sent (escaped).
	Target string
	Header [][2]string
	Body   []byte
	// Raw, when set, is the whole request as sent; the fields above are
	// then unused (the CRS regression tests).
	Raw []byte
}

// Get returns the value of the first header field called name.
func (r *Request) Get(name string) string {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return h[1]
		}
	}
	return ""
}

func (r *Request) has(name string) bool {
	for _, h := range r.Header {
		if strings.EqualFold(h[0], name) {
			return true
		}
	}
	return false
}

// addDefaults adds Host first and the browser's headers after the
// request's own, when the request does not set them.
func (r *Request) addDefaults() {
	if !r.has("Host") {
		r.Header = append([][2]string{{"Host", DefaultHost}}, r.Header...)
	}
	for _, h := range browserHeaders {
		if !r.has(h[0]) {
			r.Header = append(r.Header, h)
		}
	}
}

// AppendRaw appends the request in HTTP/1.1 wire format to dst, with a Content-Length
// (the body's length) when there is a body or the method usually has one,
// and without Connection: close. extra fields are added after the
// request's own (X-Request-Id).
func (r *Request) AppendRaw(dst []byte, extra ...[2]string) []byte {
	if r.Raw != nil {
		// The extra fields go right after the request line.
		line, rest, _ := strings.Cut(string(r.Raw), "\r\n")
		b := append(dst, line...)
		b = append(b, "\r\n"...)
		for _, h := range extra {
			b = append(b, h[0]+": "+h[1]+"\r\n"...)
		}
		return append(b, rest...)
	}
	b := append(dst, r.Method...)
	b = append(b, ' ')
	b = append(b, r.Target...)
	b = append(b, " HTTP/1.1\r\n"...)
	write := func(h [2]string) {
		b = append(b, h[0]...)
		b = append(b, ": "...)
		b = append(b, h[1]...)
		b = append(b, "\r\n"...)
	}
	for _, h := range r.Header {
		if strings.EqualFold(h[0], "Content-Length") || strings.EqualFold(h[0], "Connection") {
			continue
		}
		write(h)
	}
	for _, h := range extra {
		write(h)
	}
	switch r.Method {
	case "GET", "HEAD", "DELETE", "OPTIONS":
		if len(r.Body) == 0 {
			return append(b, "\r\n"...)
		}
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(r.Body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, r.Body...)
}
