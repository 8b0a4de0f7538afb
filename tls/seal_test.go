package tls

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-proxy/rampart/config"
)

// Keys of the tests, as encryption_key holds them.
var (
	testKey      = base64.StdEncoding.EncodeToString(testKeyBytes(1))
	testKeyOld   = base64.StdEncoding.EncodeToString(testKeyBytes(2))
	testKeyOther = base64.StdEncoding.EncodeToString(testKeyBytes(3))
)

// testKeyBytes is a key of config.EncryptionKeyBytes bytes that differ.
func testKeyBytes(seed byte) []byte {
	b := make([]byte, config.EncryptionKeyBytes)
	for i := range b {
		b[i] = seed*31 + byte(i)
	}
	return b
}

// testKeyring seals under testKey and opens under it and previous.
func testKeyring(t testing.TB, previous ...string) *keyring {
	t.Helper()
	a := &config.ACME{Cache: config.StoreRedis, EncryptionKey: testKey, PreviousEncryptionKeys: previous}
	k, err := acmeKeyring("tls.acme", a)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyringOpen(t *testing.T) {
	cur := testKeyring(t, testKeyOld)
	old2, err := newKeyring(testKeyBytes(2))
	if err != nil {
		t.Fatal(err)
	}
	other, err := newKeyring(testKeyBytes(3))
	if err != nil {
		t.Fatal(err)
	}
	const name = "rampart:acme:a.example.com"
	plain := []byte("-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n")
	sealed := cur.seal(name, plain)
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name      string
		key       string
		data      []byte
		wantErr   error
		wantStale bool
	}{
		{"sealed under the current key", name, sealed, nil, false},
		{"sealed under a previous key", name, old2.seal(name, plain), nil, true},
		{"copied to another host's key", "rampart:acme:b.example.com", sealed, errForged, false},
		{"copied to the account key", "rampart:acme:acme_account+key", sealed, errForged, false},
		{"a bit of the ciphertext flipped", name, flip(sealHeader + 3), errForged, false},
		{"a bit of the tag flipped", name, flip(len(sealed) - 1), errForged, false},
		{"a bit of the nonce flipped", name, flip(sealHeader - 1), errForged, false},
		{"another version", name, flip(len(sealMagic)), errForged, false},
		{"truncated header", name, sealed[:sealHeader-1], errForged, false},
		{"truncated tag", name, sealed[:len(sealed)-1], errForged, false},
		{"sealed under an unknown key", name, other.seal(name, plain), errUnknownKey, false},
		{"PEM in clear", name, plain, errCleartext, false},
		{"a key authorization in clear", name, []byte("tok3nT0KENtoken.thumbprint"), errCleartext, false},
		{"empty", name, nil, errCleartext, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, stale, err := cur.open(tt.key, tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v; want %v", err, tt.wantErr)
			}
			if err != nil {
				if got != nil {
					t.Errorf("got plaintext %q with an error", got)
				}
				return
			}
			if !bytes.Equal(got, plain) || stale != tt.wantStale {
				t.Errorf("got %q, stale %v; want the plaintext, stale %v", got, stale, tt.wantStale)
			}
		})
	}
	t.Run("nonces differ", func(t *testing.T) {
		if a, b := cur.seal(name, plain), cur.seal(name, plain); bytes.Equal(a, b) {
			t.Error("two seals of one value are equal")
		}
	})
	t.Run("nothing of the plaintext shows", func(t *testing.T) {
		if bytes.Contains(sealed, []byte("PRIVATE KEY")) || bytes.Contains(sealed, []byte("-----")) {
			t.Errorf("sealed value shows its plaintext: %q", sealed)
		}
	})
}

// TestACMEKeyring: the keys come from encryption_key or a file, and every
// mistake names the field without quoting the key.
func TestACMEKeyring(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", testKey+"\n")
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name    string
		acme    config.ACME
		wantErr string // "" for none
	}{
		{"inline key", config.ACME{EncryptionKey: testKey}, ""},
		{"key file with a newline", config.ACME{EncryptionKeyFile: good}, ""},
		{"previous keys", config.ACME{EncryptionKey: testKey, PreviousEncryptionKeys: []string{testKeyOld}}, ""},
		{"no key", config.ACME{}, "a.cache: cache redis needs encryption_key or encryption_key_file"},
		{"both", config.ACME{EncryptionKey: testKey, EncryptionKeyFile: good}, "a.encryption_key_file: set encryption_key or encryption_key_file, not both"},
		{"missing file", config.ACME{EncryptionKeyFile: filepath.Join(dir, "nope")}, "a.encryption_key_file: open"},
		{"empty file", config.ACME{EncryptionKeyFile: write("empty", " \n")}, "a.encryption_key_file: " + `"` + filepath.Join(dir, "empty") + `" is empty`},
		{"file of a short key", config.ACME{EncryptionKeyFile: write("short", short)}, "a.encryption_key_file: decodes to 16 bytes; want 32"},
		{"not base64", config.ACME{EncryptionKey: "not a key!"}, "a.encryption_key: is not base64"},
		{"bad previous key", config.ACME{EncryptionKey: testKey, PreviousEncryptionKeys: []string{testKeyOld, short}}, "a.previous_encryption_keys[1]: decodes to 16 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.acme.Cache = config.StoreRedis
			k, err := acmeKeyring("a", &tt.acme)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v; want no error", err)
			case tt.wantErr == "":
				if k == nil {
					t.Fatal("got no keyring")
				}
			case err == nil || !strings.HasPrefix(err.Error(), tt.wantErr):
				t.Fatalf("got %v; want an error starting %q", err, tt.wantErr)
			case strings.Contains(err.Error(), testKey):
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
	t.Run("the file's key is the inline key", func(t *testing.T) {
		a, _ := acmeKeyring("a", &config.ACME{EncryptionKey: testKey})
		b, _ := acmeKeyring("a", &config.ACME{EncryptionKeyFile: good})
		if a.fingerprint() != b.fingerprint() {
			t.Errorf("fingerprints %s and %s differ", a.fingerprint(), b.fingerprint())
		}
	})
}

// TestCheckReadsKeyFile: `rampart validate` (Check) reads
// encryption_key_file as New does.
func TestCheckReadsKeyFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "acme.key")
	err := Check("websecure", &config.ListenerTLS{ACME: &config.ACME{Cache: config.StoreRedis, EncryptionKeyFile: missing}})
	if want := "listeners.websecure.tls.acme.encryption_key_file: open " + missing; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v; want an error starting %q", err, want)
	}
	if err := os.WriteFile(missing, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check("websecure", &config.ListenerTLS{ACME: &config.ACME{Cache: config.StoreRedis, EncryptionKeyFile: missing}}); err != nil {
		t.Fatalf("got %v; want none", err)
	}
}
