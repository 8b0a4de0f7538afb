package crstest

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Build returns the bytes go-ftw would send for in: the raw request when
// one is given, else the request line, the headers (sorted by name), a
// blank line and the data. With autocomplete_headers (the default), data
// gets a Content-Type (urlencoded) and a Content-Length when missing,
// unencoded urlencoded data without "&" is encoded, and Connection: close
// is added.
func Build(in *Input) ([]byte, error) {
	if in.EncodedRequest != "" {
		return base64.StdEncoding.DecodeString(strings.ReplaceAll(in.EncodedRequest, "\n", ""))
	}
	if in.RawRequest != "" {
		return []byte(in.RawRequest), nil
	}
	method, uri, version := "GET", "/", "HTTP/1.1"
	if in.Method != nil {
		method = *in.Method
	}
	if in.URI != nil {
		uri = *in.URI
	}
	if in.Version != nil {
		version = *in.Version
	}
	auto := in.AutocompleteHeaders == nil || *in.AutocompleteHeaders
	if in.StopMagic != nil && *in.StopMagic {
		auto = false
	}
	headers := make(map[string]string, len(in.Headers)+3)
	for k, v := range in.Headers {
		headers[k] = v
	}
	var data []byte
	if in.Data != nil {
		data = render(*in.Data)
	}
	if len(data) > 0 && auto {
		if get(headers, "Content-Type") == "" {
			headers["Content-Type"] = "application/x-www-form-urlencoded"
		}
		data = encodeData(get(headers, "Content-Type"), data)
	}
	if strings.HasPrefix(get(headers, "Content-Type"), "multipart/form-data;") {
		// Multipart bodies end lines with CRLF (RFC 7578).
		data = bytes.ReplaceAll(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	}
	if auto {
		if len(data) > 0 && get(headers, "Content-Length") == "" {
			headers["Content-Length"] = strconv.Itoa(len(data))
		}
		if get(headers, "Connection") == "" {
			headers["Connection"] = "close"
		}
	}

	var b bytes.Buffer
	b.WriteString(method + " " + uri)
	if version != "" {
		b.WriteString(" " + version)
	}
	b.WriteString("\r\n")
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k + ": " + headers[k] + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(data)
	return b.Bytes(), nil
}

// get returns the header's value, the name case-insensitive.
func get(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// encodeData url-encodes urlencoded data that is not encoded yet and holds
// a single parameter, as go-ftw does.
func encodeData(ctype string, data []byte) []byte {
	if ctype != "application/x-www-form-urlencoded" {
		return data
	}
	s := string(data)
	if un, err := url.QueryUnescape(s); err != nil || un != s || strings.Contains(s, "&") {
		return data
	}
	q, err := url.ParseQuery(s)
	if err != nil {
		return data
	}
	return []byte(q.Encode())
}

// render expands go-ftw's data templates ({{ "1" | repeat 64200 }}). Data
// that is not a valid template (an attack payload with braces) is sent as
// is.
func render(data string) []byte {
	if !strings.Contains(data, "{{") {
		return []byte(data)
	}
	t, err := template.New("data").Funcs(template.FuncMap{
		"repeat": func(n int, s string) string { return strings.Repeat(s, n) },
	}).Parse(data)
	if err != nil {
		return []byte(data)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return []byte(data)
	}
	return b.Bytes()
}
