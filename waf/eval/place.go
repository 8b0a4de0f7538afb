package eval

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Placements: where in a request a payload is put.
const (
	PlaceQuery     = "query"     // a query string argument of a GET
	PlaceForm      = "form"      // an argument of a urlencoded POST body
	PlaceJSON      = "json"      // a string in a JSON body
	PlaceMultipart = "multipart" // a multipart field's value, or an uploaded file's name
	PlaceXML       = "xml"       // an element's text in an XML body
	PlaceHeader    = "header"    // a custom request header (X-Api-Key, X-Forwarded-Host, X-Client-Data)
	PlacePath      = "path"      // a segment of the URL path
	PlaceCookie    = "cookie"    // a cookie's value
	PlaceGraphQL   = "graphql"   // a string argument of a GraphQL query, POSTed as JSON or in a GET
)

// Placements are every placement, in report order.
var Placements = []string{PlaceQuery, PlaceForm, PlaceJSON, PlaceMultipart, PlaceXML,
	PlaceHeader, PlacePath, PlaceCookie, PlaceGraphQL}

// ValuePlacements are where benign values are placed: the placements that
// carry free text in ordinary traffic.
var ValuePlacements = []string{PlaceQuery, PlaceForm, PlaceJSON, PlaceMultipart, PlaceXML, PlaceGraphQL}

// Encodings: how a payload is encoded before it is placed.
const (
	EncPlain     = "plain"         // as the list has it
	EncURL       = "url"           // every byte but A-Z a-z 0-9 - . _ ~ as %XX
	EncDoubleURL = "double-url"    // URL-encoded twice
	EncBase64    = "base64"        // standard base64, padded
	EncUnicode   = "json-unicode"  // every character but letters, digits and space as \uXXXX
	EncHTML      = "html-entities" // & < > " ' as named entities, other punctuation as &#xHH;
)

// Encodings are the encodings evaluated by default, in report order.
var Encodings = []string{EncPlain, EncURL, EncDoubleURL, EncBase64, EncUnicode, EncHTML}

// Encodings evaluated only when asked for (--encodings): forms that only
// some application stacks decode.
const (
	EncPctU     = "pct-u"         // every byte but letters and digits as %uXXXX (IIS, old ASP)
	EncOverlong = "overlong-utf8" // every byte but letters and digits as a 2-byte overlong UTF-8 sequence, %-encoded
)

// AllEncodings are every encoding Encode knows.
var AllEncodings = append(append([]string(nil), Encodings...), EncPctU, EncOverlong)

// Skip returns why class is not evaluated in placement with encoding, or
// "". An XXE payload is an XML document: it is sent as an XML body or an
// uploaded .xml file, as written; it is not a value of other places, and
// an encoded document is no longer one.
func Skip(class, placement, encoding string) string {
	if class == ClassXXE {
		if placement != PlaceXML && placement != PlaceMultipart {
			return "an XML document is a body or an uploaded file, not a value"
		}
		if encoding != EncPlain {
			return "an encoded XML document is not one"
		}
	}
	return ""
}

// Encode returns payload encoded with enc: the value an application
// decodes (once more than its framework does) to get the payload.
func Encode(enc, payload string) string {
	switch enc {
	case EncURL:
		return pctAll(payload)
	case EncDoubleURL:
		return pctAll(pctAll(payload))
	case EncBase64:
		return base64.StdEncoding.EncodeToString([]byte(payload))
	case EncUnicode:
		return unicodeEscape(payload)
	case EncHTML:
		return htmlEntities(payload)
	case EncPctU:
		var b strings.Builder
		for _, r := range payload {
			if r < 0x80 && (isLetter(byte(r)) || r >= '0' && r <= '9') {
				b.WriteRune(r)
			} else if r <= 0xffff {
				fmt.Fprintf(&b, "%%u%04X", r)
			} else {
				b.WriteString(pctAll(string(r)))
			}
		}
		return b.String()
	case EncOverlong:
		var b strings.Builder
		for i := 0; i < len(payload); i++ {
			c := payload[i]
			switch {
			case isLetter(c) || c >= '0' && c <= '9':
				b.WriteByte(c)
			case c < 0x80:
				fmt.Fprintf(&b, "%%%02X%%%02X", 0xc0|c>>6, 0x80|c&0x3f)
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	return payload
}

// Multipart boundary of the generated requests.
const boundary = "----RampartEvalBoundary7MA4YWxkTrZu0gW"

// headerNames are the custom headers a payload is put in, in turn.
var headerNames = []string{"X-Api-Key", "X-Forwarded-Host", "X-Client-Data"}

// queryNames are the query arguments a payload is put in, in turn.
var queryNames = []string{"q", "id", "filter"}

// Build returns the request that carries payload, encoded with enc, in
// placement. variant (the payload's index) picks between the forms of a
// placement: the header or argument name; a multipart field value or a
// file name; a GraphQL query POSTed as JSON or sent in a GET.
//
// The placement's own syntax is escaped minimally, so that the application
// sees the encoded value: in URL placements (query, form, path, cookie)
// only what would break the syntax is %-escaped, and a "%" that starts a
// valid escape is kept, so that a payload the list wrote pre-encoded
// ("%0Aid") reaches the application decoded once, as the list's authors
// send it; JSON strings, XML text and GraphQL strings are escaped as the
// format requires. Two encodings are the format's own escapes where the
// format has them, undone by the parser: json-unicode in JSON and GraphQL
// (\u0027 in the string), html-entities in XML (&#x27; in the text);
// elsewhere they are text the application decodes.
func Build(class, placement, enc, payload string, variant int) Request {
	value := Encode(enc, payload)
	var r Request
	switch placement {
	case PlaceQuery:
		r.Method = "GET"
		r.Target = "/search?" + queryNames[variant%len(queryNames)] + "=" + escapeURL(value) + "&page=1"
	case PlaceForm:
		r.Method = "POST"
		r.Target = "/account/profile"
		r.Header = [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}}
		r.Body = []byte("name=alice&bio=" + escapeURL(value) + "&save=1")
	case PlaceJSON:
		r.Method = "POST"
		r.Target = "/api/v1/items"
		r.Header = [][2]string{{"Content-Type", "application/json"}}
		s := jsonString(value)
		if enc == EncUnicode {
			s = `"` + unicodeEscape(payload) + `"`
		}
		r.Body = []byte(`{"id":42,"name":"widget","note":` + s + `,"tags":["blue","small"]}`)
	case PlaceMultipart:
		r.Method = "POST"
		r.Target = "/upload"
		r.Header = [][2]string{{"Content-Type", "multipart/form-data; boundary=" + boundary}}
		var b bytes.Buffer
		part := func(disposition, ctype, content string) {
			b.WriteString("--" + boundary + "\r\nContent-Disposition: form-data; " + disposition + "\r\n")
			if ctype != "" {
				b.WriteString("Content-Type: " + ctype + "\r\n")
			}
			b.WriteString("\r\n" + content + "\r\n")
		}
		part(`name="title"`, "", "holiday photos")
		switch {
		case class == ClassXXE:
			part(`name="file"; filename="data.xml"`, "application/xml", value)
		case variant%2 == 0 || class == ClassBenign:
			// Benign values are typed into fields; attack payloads
			// are also tried as file names.
			part(`name="comment"`, "", value)
		default:
			part(`name="file"; filename="`+escapeFilename(value)+`"`, "text/plain", "hello, world\n")
		}
		b.WriteString("--" + boundary + "--\r\n")
		r.Body = b.Bytes()
	case PlaceXML:
		r.Method = "POST"
		r.Target = "/api/v1/orders"
		r.Header = [][2]string{{"Content-Type", "application/xml"}}
		switch {
		case class == ClassXXE:
			r.Body = []byte(value)
		default:
			text := xmlText(value)
			if enc == EncHTML {
				text = htmlEntities(payload)
			}
			r.Body = []byte(`<?xml version="1.0" encoding="UTF-8"?><order><id>42</id><note>` + text + `</note></order>`)
		}
	case PlaceHeader:
		r.Method = "GET"
		r.Target = "/api/v1/items"
		r.Header = [][2]string{{headerNames[variant%len(headerNames)], escapeHeader(value)}}
	case PlacePath:
		r.Method = "GET"
		r.Target = "/api/v1/items/" + escapePath(value, enc == EncPlain) + "/details"
	case PlaceCookie:
		r.Method = "GET"
		r.Target = "/account"
		r.Header = [][2]string{{"Cookie", "session=3b0f5c2e9a7d41c8; theme=dark; pref=" + escapeCookie(value)}}
	case PlaceGraphQL:
		s := graphqlString(value)
		if enc == EncUnicode {
			s = `"` + unicodeEscape(payload) + `"`
		}
		query := "query Search { products(filter: " + s + ", first: 10) { id name price } }"
		if variant%2 == 0 {
			r.Method = "POST"
			r.Target = "/graphql"
			r.Header = [][2]string{{"Content-Type", "application/json"}}
			r.Body = []byte(`{"operationName":"Search","query":` + jsonString(query) + `,"variables":{}}`)
		} else {
			r.Method = "GET"
			// The whole query is one argument: escaped in full, so
			// that the framework's decoding gives the query as built.
			r.Target = "/graphql?operationName=Search&query=" + url.QueryEscape(query)
		}
	default:
		panic(fmt.Sprintf("eval: unknown placement %q", placement))
	}
	r.Header = append(r.Header, [2]string{"Accept", "*/*"})
	r.addDefaults()
	return r
}

const hexDigits = "0123456789ABCDEF"

func isUnreserved(c byte) bool {
	return isLetter(c) || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'f' }

// pctAll %-encodes every byte but the unreserved ones.
func pctAll(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// escapeWith %-encodes the bytes of s for which bad is true, bytes outside
// printable ASCII, and "%" unless it starts a valid escape.
func escapeWith(s string, bad func(c byte) bool) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		esc := c <= ' ' || c >= 0x7f || bad(c)
		if c == '%' {
			esc = i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])
		}
		if !esc {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// escapeURL escapes a query or form argument's value.
func escapeURL(s string) string {
	return escapeWith(s, func(c byte) bool {
		return c == '&' || c == '#' || c == '+' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}'
	})
}

// escapePath escapes a path segment; "/" is kept when keepSlash (a plain
// traversal payload is meant to span segments).
func escapePath(s string, keepSlash bool) string {
	return escapeWith(s, func(c byte) bool {
		return c == '?' || c == '#' || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' || c == '{' || c == '|' || c == '}' || c == '/' && !keepSlash
	})
}

// escapeCookie escapes what a cookie value cannot hold.
func escapeCookie(s string) string {
	return escapeWith(s, func(c byte) bool { return c == ';' || c == ',' || c == '"' || c == '\\' })
}

// escapeHeader escapes control characters (a field value cannot hold CR,
// LF or NUL); the rest is sent as is.
func escapeHeader(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

// escapeFilename escapes what a quoted multipart filename cannot hold, as
// browsers do.
func escapeFilename(s string) string {
	r := strings.NewReplacer(`"`, "%22", "\r", "%0D", "\n", "%0A")
	return r.Replace(s)
}

// jsonString returns s as a JSON string, HTML characters unescaped.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// unicodeEscape writes every character but ASCII letters, digits and space
// as \uXXXX (a surrogate pair above the BMP).
func unicodeEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (isLetter(byte(r)) || r >= '0' && r <= '9' || r == ' ') {
			b.WriteRune(r)
			continue
		}
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// htmlEntities writes & < > " ' as named entities (' as &#39;) and the
// other ASCII punctuation as &#xHH;.
func htmlEntities(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '&':
			b.WriteString("&amp;")
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '"':
			b.WriteString("&quot;")
		case c == '\'':
			b.WriteString("&#39;")
		case c > ' ' && c < 0x7f && !isLetter(c) && !(c >= '0' && c <= '9'):
			fmt.Fprintf(&b, "&#x%X;", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// xmlText escapes s for an XML element's text.
func xmlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&apos;")
		case utf8.RuneError:
			b.WriteString("\uFFFD")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// graphqlString returns s as a GraphQL string literal.
func graphqlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
