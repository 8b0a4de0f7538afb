package tls

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rampart-proxy/rampart/config"
)

// Every value the ACME cache writes to Redis is sealed (AES-256-GCM) in an
// envelope:
//
//	magic "\x89RAE" | version 1 | key id (8) | nonce (12) | ciphertext and tag
//
// The additional authenticated data is the envelope's header (magic to
// nonce) followed by the Redis key the value is stored under, so a value
// copied to another key (another host's certificate, the account key) fails
// authentication like a modified one. The key id names the key that sealed
// the value, so that a value sealed under a key this instance does not have
// (a fleet configured with different keys) is told apart from a forgery.
// A value in clear (autocert's PEM, or an HTTP-01 key authorization) cannot
// start with the magic: PEM starts with "-", a key authorization with a
// base64url character, and 0x89 is neither.
//
// The AES key and the key id are derived from the configured key with HKDF
// (SHA-256) under distinct labels: the id reveals nothing of the key, and
// the configured key is used for nothing else.
const (
	sealMagic   = "\x89RAE"
	sealVersion = 1
	keyIDLen    = 8
	nonceLen    = 12 // GCM's standard nonce; random per value
	sealHeader  = len(sealMagic) + 1 + keyIDLen + nonceLen

	hkdfKeyLabel = "rampart acme cache v1 aes-256-gcm key"
	hkdfIDLabel  = "rampart acme cache v1 key id"
)

// Why a value could not be opened.
var (
	// errCleartext: the value is not an envelope (written by a Rampart
	// without encryption, or planted).
	errCleartext = errors.New("tls: ACME cache value is stored in clear")
	// errUnknownKey: an envelope sealed under a key that is neither the
	// current nor a previous one.
	errUnknownKey = errors.New("tls: ACME cache value is sealed under a key this instance does not have")
	// errForged: an envelope that fails authentication: modified, copied
	// from another Redis key, or truncated.
	errForged = errors.New("tls: ACME cache value fails authentication (modified, or copied from another key)")
)

type keyID [keyIDLen]byte

// keyring seals under the current key and opens under any of its keys.
// Immutable once built; safe for concurrent use.
type keyring struct {
	current keyID
	ids     []keyID               // the current key's, then the previous ones', in order
	aeads   map[keyID]cipher.AEAD // by id
}

// newKeyring builds a keyring from raw keys of config.EncryptionKeyBytes:
// current seals, previous only open.
func newKeyring(current []byte, previous ...[]byte) (*keyring, error) {
	k := &keyring{aeads: make(map[keyID]cipher.AEAD, 1+len(previous))}
	for i, raw := range append([][]byte{current}, previous...) {
		id, aead, err := deriveKey(raw)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			k.current = id
		}
		if _, dup := k.aeads[id]; !dup {
			k.ids = append(k.ids, id)
			k.aeads[id] = aead
		}
	}
	return k, nil
}

// deriveKey returns the key id and the AEAD of a configured key.
func deriveKey(raw []byte) (keyID, cipher.AEAD, error) {
	var id keyID
	if len(raw) != config.EncryptionKeyBytes {
		return id, nil, fmt.Errorf("tls: ACME encryption key of %d bytes; want %d", len(raw), config.EncryptionKeyBytes)
	}
	aesKey, err := hkdf.Key(sha256.New, raw, nil, hkdfKeyLabel, 32)
	if err != nil {
		return id, nil, err
	}
	idBytes, err := hkdf.Key(sha256.New, raw, nil, hkdfIDLabel, keyIDLen)
	if err != nil {
		return id, nil, err
	}
	copy(id[:], idBytes)
	block, err := aes.NewCipher(aesKey)
	if err != nil {
		return id, nil, err
	}
	aead, err := cipher.NewGCM(block)
	return id, aead, err
}

// fingerprint identifies the keyring's keys (current first), for the
// identity of an issuer: a change of keys builds a new one.
func (k *keyring) fingerprint() string {
	var b strings.Builder
	for i, id := range k.ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%x", id)
	}
	return b.String()
}

// seal returns plain sealed under the current key for the Redis key name.
func (k *keyring) seal(name string, plain []byte) []byte {
	out := make([]byte, sealHeader, sealHeader+len(plain)+16)
	copy(out, sealMagic)
	out[len(sealMagic)] = sealVersion
	copy(out[len(sealMagic)+1:], k.current[:])
	var nonce [nonceLen]byte
	rand.Read(nonce[:]) // never fails (crypto/rand)
	copy(out[sealHeader-nonceLen:], nonce[:])
	return k.aeads[k.current].Seal(out, nonce[:], plain, aad(out, name))
}

// open returns the plaintext of data read from the Redis key name, and
// whether it was sealed under a previous key (it should be sealed again).
// The error is errCleartext, errUnknownKey or errForged.
func (k *keyring) open(name string, data []byte) (plain []byte, stale bool, err error) {
	if !bytes.HasPrefix(data, []byte(sealMagic)) {
		return nil, false, errCleartext
	}
	if len(data) < sealHeader || data[len(sealMagic)] != sealVersion {
		return nil, false, errForged
	}
	var id keyID
	copy(id[:], data[len(sealMagic)+1:])
	aead := k.aeads[id]
	if aead == nil {
		return nil, false, fmt.Errorf("%w (key id %x)", errUnknownKey, id)
	}
	header := data[:sealHeader]
	plain, err = aead.Open(nil, header[sealHeader-nonceLen:], data[sealHeader:], aad(header, name))
	if err != nil {
		return nil, false, errForged
	}
	return plain, id != k.current, nil
}

// aad is the additional data of a value: its envelope header, then the
// Redis key it is stored under.
func aad(header []byte, name string) []byte {
	return append(append(make([]byte, 0, len(header)+len(name)), header...), name...)
}

// acmeKeyring builds the keyring of an ACME block with cache redis from
// encryption_key or encryption_key_file and previous_encryption_keys; p is
// the block's field path, for errors.
func acmeKeyring(p string, a *config.ACME) (*keyring, error) {
	field, text := p+".encryption_key", a.EncryptionKey
	switch {
	case a.EncryptionKey != "" && a.EncryptionKeyFile != "":
		return nil, fmt.Errorf("%s.encryption_key_file: set encryption_key or encryption_key_file, not both", p)
	case a.EncryptionKeyFile != "":
		b, err := os.ReadFile(a.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.encryption_key_file: %w", p, err)
		}
		field, text = p+".encryption_key_file", strings.TrimSpace(string(b))
		if text == "" {
			return nil, fmt.Errorf("%s: %q is empty", field, a.EncryptionKeyFile)
		}
	case a.EncryptionKey == "":
		return nil, fmt.Errorf("%s.cache: cache redis needs encryption_key or encryption_key_file "+
			"(generate a key with `openssl rand -base64 32`; the same on every instance)", p)
	}
	current, err := config.ParseEncryptionKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	previous := make([][]byte, len(a.PreviousEncryptionKeys))
	for i, s := range a.PreviousEncryptionKeys {
		if previous[i], err = config.ParseEncryptionKey(s); err != nil {
			return nil, fmt.Errorf("%s.previous_encryption_keys[%d]: %w", p, i, err)
		}
	}
	return newKeyring(current, previous...)
}
