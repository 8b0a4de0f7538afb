package waf

import (
	"encoding/base64"
	"strings"
	"testing"
)

const samlResponse = `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6" Version="2.0" IssueInstant="2026-12-07T10:00:00Z" Destination="https://shop.example.com/saml/acs"><saml:Issuer>https://idp.example.com</saml:Issuer><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:Reference URI="#_8e8dc5f69a98cc4c1ff3427e5ce34606fd672f91e6"><ds:DigestValue>bm90LWEtcmVhbC1kaWdlc3Q=</ds:DigestValue></ds:Reference></ds:SignedInfo></ds:Signature><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status><saml:Assertion ID="_a1" Version="2.0" IssueInstant="2026-12-07T10:00:00Z"><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">jane@example.org</saml:NameID></saml:Subject><saml:AttributeStatement><saml:Attribute Name="groups"><saml:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">admins</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion></samlp:Response>`

func TestInertXMLDoc(t *testing.T) {
	b := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name, v string
		want    bool
	}{
		{"SAML response", samlResponse, true},
		{"SAML response in base64", b(samlResponse), true},
		{"with an XML declaration", `<?xml version="1.0" encoding="UTF-8"?>` + samlResponse, true},
		{"default namespace", `<order xmlns="urn:example:orders"><id>42</id><note>ring twice</note></order>`, true},
		// What a browser or an HTML page would run or load.
		{"SVG with an event handler", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`, false},
		{"SVG in base64", b(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), false},
		{"XHTML root", `<html xmlns="http://www.w3.org/1999/xhtml"><p>x</p></html>`, false},
		{"XHTML element inside", `<r xmlns="urn:x"><h:p xmlns:h="http://www.w3.org/1999/xhtml">x</h:p></r>`, false},
		{"script inside", `<r xmlns="urn:x"><script>alert(1)</script></r>`, false},
		{"prefixed image", `<r xmlns="urn:x" xmlns:y="urn:y"><y:img src="x"/></r>`, false},
		{"event handler attribute", `<r xmlns="urn:x"><item onclick="alert(1)">x</item></r>`, false},
		{"javascript URL", `<r xmlns="urn:x"><link2 href=" java&#x09;script:alert(1)">x</link2></r>`, false},
		{"data URL", `<r xmlns="urn:x"><ref target="data:text/html,&lt;script&gt;">x</ref></r>`, false},
		{"style attribute", `<r xmlns="urn:x"><b2 style="x:expression(alert(1))">x</b2></r>`, false},
		{"external entity", `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r xmlns="urn:x">&x;</r>`, false},
		{"CDATA", `<r xmlns="urn:x"><![CDATA[<script>alert(1)</script>]]></r>`, false},
		{"stylesheet instruction", `<?xml-stylesheet type="text/xsl" href="x.xsl"?><r xmlns="urn:x"/>`, false},
		{"schema location on a collaborator host", `<aai xmlns="http://a.b/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://a.b/ http://c5ipg3yq.example.net/aai.xsd">aai</aai>`, false},
		{"XInclude", `<r xmlns="urn:x" xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="file:///etc/passwd" parse="text"/></r>`, false},
		{"no namespace", `<order><id>42</id></order>`, false},
		{"two roots", `<r xmlns="urn:x"/><s xmlns="urn:x"/>`, false},
		{"mismatched tags", `<r xmlns="urn:x"><a2></b2></r>`, false},
		{"not XML", `hello <b>there</b>`, false},
		{"text after the document", samlResponse + `<img src=x onerror=alert(1)>`, false},
	} {
		if got := inertXMLDoc(tc.v); got != tc.want {
			t.Errorf("%s: inertXMLDoc = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// TestXMLDocNotAttack: no XSS or XXE payload of the evaluation corpus,
// as it is or in base64, is an inert document.
func TestXMLDocNotAttack(t *testing.T) {
	for _, p := range evalAttacks(t, "xss", "xxe") {
		for _, v := range []string{p, base64.StdEncoding.EncodeToString([]byte(p))} {
			if inertXMLDoc(v) {
				t.Errorf("payload %q is an inert XML document", strings.TrimSpace(p))
			}
		}
	}
}
