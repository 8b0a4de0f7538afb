package waf

import (
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// An XML document in an argument, most often base64-encoded (a SAML
// response or request posted by an identity provider, a signed XML
// envelope), is read by the application's XML parser. The decoding layer
// shows the CRS its text, and the CRS's XSS rules read its namespace
// declarations (xmlns, 941130) and its markup as an HTML injection.
// shapeXMLDoc takes the XSS rules' score back for a document that is
// inert wherever it lands, argued from what an XSS payload needs:
//
//   - read as XML, by a browser too, it must be a well-formed document
//     whose root element is in a namespace of its own: not XHTML's, SVG's,
//     MathML's, XSLT's or another a browser acts on (browserNamespaces),
//     and no element or attribute anywhere is in one of those or declares
//     one;
//   - read as HTML (an application that echoes it), its tags must open no
//     element that runs, loads or submits anything (script, iframe, img,
//     svg, a, form, style, ...: activeElements), no attribute may be an
//     event handler (on...) or a style, and no attribute value a
//     javascript:, vbscript: or data: URL;
//   - nothing an XML parser fetches: no schema location (xsi:schemaLocation,
//     noNamespaceSchemaLocation), no XInclude;
//   - nothing an XML or HTML parser reads apart from elements and text:
//     no DOCTYPE or ENTITY declaration (an external entity is XXE; the xxe
//     group reads declarations wherever they are), no CDATA section (HTML
//     reads its content as markup), no processing instruction but the XML
//     declaration (xml-stylesheet runs XSLT).
//
// The SQL, command and file rules keep their score: the document's text
// and attribute values are data the application uses.

// maxXMLDoc bounds the document xmlDoc parses.
const maxXMLDoc = 64 << 10

// browserNamespaces are the namespaces whose elements or attributes a
// browser renders or acts on (in lower case): XHTML, SVG, MathML, XSLT,
// XML Events, XForms, XLink, the XUL, XBL and VML of older browsers, and
// XInclude, which makes an XML parser fetch.
var browserNamespaces = []string{
	"http://www.w3.org/1999/xhtml",
	"http://www.w3.org/2000/svg",
	"http://www.w3.org/1998/math/mathml",
	"http://www.w3.org/1999/xsl/transform",
	"http://www.w3.org/2001/xml-events",
	"http://www.w3.org/2002/xforms",
	"http://www.w3.org/1999/xlink",
	"http://www.mozilla.org/keymaster/gatekeeper/there.is.only.xul",
	"http://www.mozilla.org/xbl",
	"urn:schemas-microsoft-com:vml",
	"http://www.w3.org/2001/xinclude",
}

// activeElements are HTML and SVG elements that run script, load a
// resource, navigate or submit, by local name in lower case.
var activeElements = map[string]bool{
	"script": true, "iframe": true, "frame": true, "frameset": true, "object": true, "embed": true,
	"applet": true, "img": true, "image": true, "svg": true, "math": true, "style": true, "link": true,
	"meta": true, "base": true, "form": true, "input": true, "button": true, "a": true, "video": true,
	"audio": true, "source": true, "track": true, "body": true, "html": true, "head": true,
	"foreignobject": true, "animate": true, "set": true, "handler": true, "template": true,
	"xml": true, "isindex": true, "marquee": true, "details": true, "select": true, "textarea": true,
	"keygen": true, "portal": true, "use": true, "picture": true, "noscript": true, "title": true,
	"xmp": true, "plaintext": true, "listing": true, "noembed": true, "noframes": true,
	"listener": true, "binding": true,
}

// inertXMLDoc reports whether v is such a document, as it is or as the
// base64 it decodes to.
func inertXMLDoc(v string) bool {
	t := strings.TrimSpace(v)
	if !strings.HasPrefix(t, "<") {
		if len(t) < minBase64Len || len(t) > maxXMLDoc*4/3+4 || !base64ish(t) {
			return false
		}
		d, ok := b64text(t)
		if !ok {
			return false
		}
		t = strings.TrimSpace(d)
	}
	if len(t) > maxXMLDoc || !strings.HasPrefix(t, "<") || strings.Contains(t, "<!") {
		return false
	}
	// The XML declaration is the only processing instruction.
	if rest, ok := strings.CutPrefix(t, "<?xml "); ok {
		end := strings.Index(rest, "?>")
		if end < 0 {
			return false
		}
		t = rest[end+2:]
	}
	if strings.Contains(t, "<?") {
		return false
	}
	return inertXMLTree(t)
}

// errActive stops the walk at the first active part.
var errActive = errors.New("active")

// inertXMLTree parses t as a strict XML document and checks its elements
// and attributes.
func inertXMLTree(t string) bool {
	d := xml.NewDecoder(strings.NewReader(t))
	d.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				if roots++; roots > 1 {
					return false
				}
			}
			if depth++; depth > 64 {
				return false
			}
			if activeElements[strings.ToLower(e.Name.Local)] {
				return false
			}
			for _, a := range e.Attr {
				if activeAttr(a) {
					return false
				}
			}
			if depth == 1 && !ownNamespace(e) {
				return false
			}
		case xml.EndElement:
			depth--
		case xml.Directive, xml.ProcInst:
			return false
		}
	}
	// RawToken does not match end tags to start tags: a second decoder
	// pass does, and resolves the namespaces of every element.
	d = xml.NewDecoder(strings.NewReader(t))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return roots == 1
		}
		if err != nil {
			return false
		}
		e, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if browserNamespace(e.Name.Space) {
			return false
		}
		for _, a := range e.Attr {
			if browserNamespace(a.Name.Space) || a.Name.Space == "xmlns" && browserNamespace(a.Value) ||
				a.Name.Space == "" && a.Name.Local == "xmlns" && browserNamespace(a.Value) {
				return false
			}
		}
	}
}

// ownNamespace reports whether the root element e (as RawToken gives it:
// prefix in Name.Space) declares the namespace its name is in, and that
// namespace is not a browser's.
func ownNamespace(e xml.StartElement) bool {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" && e.Name.Space == "" ||
			a.Name.Space == "xmlns" && a.Name.Local == e.Name.Space && e.Name.Space != "" {
			return a.Value != "" && !browserNamespace(a.Value)
		}
	}
	return false
}

func browserNamespace(ns string) bool {
	ns = strings.ToLower(strings.TrimSpace(ns))
	for _, b := range browserNamespaces {
		if ns == b {
			return true
		}
	}
	return false
}

// activeAttr reports whether attribute a is an event handler, a style, a
// schema location (a validating parser fetches it: the CRS's tests send
// one pointing at a collaborator host), or holds a URL of a scheme that
// runs script or carries a document.
func activeAttr(a xml.Attr) bool {
	name := strings.ToLower(a.Name.Local)
	if strings.HasPrefix(name, "on") || name == "style" || name == "formaction" || name == "srcdoc" ||
		name == "schemalocation" || name == "nonamespaceschemalocation" {
		return true
	}
	var b strings.Builder
	for _, r := range strings.ToLower(a.Value) {
		if r > ' ' {
			b.WriteRune(r)
		}
		if b.Len() >= 16 {
			break
		}
	}
	v := b.String()
	for _, s := range [...]string{"javascript:", "vbscript:", "data:", "livescript:"} {
		if strings.HasPrefix(v, s) {
			return true
		}
	}
	return false
}
