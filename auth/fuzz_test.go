package auth

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzBasicCheck: any Authorization value is checked without a panic, and
// only the right credentials pass.
func FuzzBasicCheck(f *testing.F) {
	for _, s := range []string{"Basic YWxpY2U6cHc=", "Basic ", "basic YWxpY2U6", "Bearer x", "Basic !!", "Basic YWxpY2U6cHc=  "} {
		f.Add([]byte(s))
	}
	b, err := NewBasic(BasicOptions{Users: map[string]string{"alice": hashOf(f, "pw")}, CacheTTL: time.Minute, CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	f.Fuzz(func(t *testing.T, v []byte) {
		var buf [maxCredentials]byte
		cred, ok := decodeBasic(buf[:0], v)
		user, r, _ := b.Check(v, ip)
		if r == OK && (!ok || !bytes.Equal(cred, []byte("alice:pw")) || user != "alice") {
			t.Fatalf("%q passed as %q (decoded %q)", v, user, cred)
		}
	})
}

// FuzzParseHtpasswd: any file is parsed or refused without a panic, and
// every user it accepts has a bcrypt hash.
func FuzzParseHtpasswd(f *testing.F) {
	f.Add([]byte("alice:$2a$04$0tl7Yc7Xx5p8b.xDoZ2S3uJ8vW2p0z4J5Nj5Fq0Yl8M8o0q0e0e0K\n# c\n"))
	f.Add([]byte("bob:$apr1$x$y\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseHtpasswd(data)
		if err != nil {
			return
		}
		for name, h := range users {
			if !IsBcrypt(h) {
				t.Fatalf("user %q accepted with hash %q", name, h)
			}
		}
	})
}
