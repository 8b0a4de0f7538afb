package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// listenerTLS checks a listener's TLS block at p.
func (v *validator) listenerTLS(p string, t *ListenerTLS) {
	if !oneOf(t.MinVersion, "1.2", "1.3") {
		v.errorf(p+".min_version", `%q must be "1.2" or "1.3"`, t.MinVersion)
	}
	if len(t.Certificates) == 0 && t.ACME == nil {
		v.fieldf(p, "certificates", "certificates or acme is required")
	}
	for i, c := range t.Certificates {
		cp := p + ".certificates[" + strconv.Itoa(i) + "]"
		if c.CertFile == "" {
			v.fieldf(cp, "cert_file", "cert_file is required")
		}
		if c.KeyFile == "" {
			v.fieldf(cp, "key_file", "key_file is required")
		}
	}
	if t.ClientAuth != "" {
		if !oneOf(t.ClientAuth, ClientAuthRequire, ClientAuthVerifyIfGiven) {
			v.errorf(p+".client_auth", "%q must be require or verify_if_given", t.ClientAuth)
		} else if t.ClientCAFile == "" {
			v.fieldf(p, "client_auth", "client_auth needs client_ca_file")
		}
	}
	if t.ACME != nil {
		v.acme(p+".acme", t.ACME)
	}
}

// acme checks an ACME block at p.
func (v *validator) acme(p string, a *ACME) {
	switch a.Cache {
	case StoreDir:
		if a.CacheDir == "" {
			v.fieldf(p, "cache_dir", "cache_dir is required with cache dir")
		}
	case StoreRedis:
		if v.c.Redis == nil {
			v.errorf(p+".cache", `"redis" needs the top-level redis section`)
		}
	default:
		v.errorf(p+".cache", "%q must be dir or redis", a.Cache)
	}
	v.acmeEncryption(p, a)
	if u, err := url.Parse(a.DirectoryURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.errorf(p+".directory_url", "%q is not an http(s) URL", a.DirectoryURL)
	}
	if a.Email != "" && !strings.Contains(a.Email, "@") {
		v.errorf(p+".email", "%q is not an address", a.Email)
	}
	for i, h := range a.Hosts {
		if !validDNSName(h) {
			v.errorf(p+".hosts["+strconv.Itoa(i)+"]", "%q is not a DNS name (ACME cannot order wildcards or IPs here)", h)
		}
	}
}

// acmeEncryption checks the keys that encrypt an ACME cache in Redis: one
// is required with cache redis (values would otherwise sit in Redis in
// clear, private keys included), none may be set with cache dir. A key's
// value never appears in an error.
func (v *validator) acmeEncryption(p string, a *ACME) {
	if a.Cache == StoreDir {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"encryption_key", a.EncryptionKey != ""},
			{"encryption_key_file", a.EncryptionKeyFile != ""},
			{"previous_encryption_keys", len(a.PreviousEncryptionKeys) > 0},
			{"insecure_migrate_cleartext", a.InsecureMigrateCleartext},
		} {
			if f.set {
				v.errorf(p+"."+f.name, "applies to cache redis only (cache dir is protected by the directory's mode)")
			}
		}
	}
	if a.Cache != StoreRedis {
		return
	}
	switch {
	case a.EncryptionKey == "" && a.EncryptionKeyFile == "":
		v.fieldf(p, "cache", "cache redis needs encryption_key (or encryption_key_file): "+
			"32 random bytes in base64 that encrypt the account and certificate keys in Redis, "+
			"the same on every instance; generate one with `openssl rand -base64 32` and set "+
			"encryption_key: ${RAMPART_ACME_ENCRYPTION_KEY}")
	case a.EncryptionKey != "" && a.EncryptionKeyFile != "":
		v.fieldf(p, "encryption_key_file", "set encryption_key or encryption_key_file, not both")
	case a.EncryptionKey != "":
		if _, err := ParseEncryptionKey(a.EncryptionKey); err != nil {
			v.errorf(p+".encryption_key", "%v", err)
		}
	}
	for i, k := range a.PreviousEncryptionKeys {
		if _, err := ParseEncryptionKey(k); err != nil {
			v.errorf(p+".previous_encryption_keys["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
}

// EncryptionKeyBytes is the length of an ACME encryption key (AES-256).
const EncryptionKeyBytes = 32

// ParseEncryptionKey decodes an ACME encryption key (encryption_key,
// previous_encryption_keys, the contents of encryption_key_file without
// surrounding whitespace): standard base64 of EncryptionKeyBytes bytes
// that are not all the same (a placeholder, not a key). Its errors never
// quote the key.
func ParseEncryptionKey(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("is not base64 (generate a key with `openssl rand -base64 32`)")
	}
	if len(b) != EncryptionKeyBytes {
		return nil, fmt.Errorf("decodes to %d bytes; want %d (generate a key with `openssl rand -base64 32`)", len(b), EncryptionKeyBytes)
	}
	if bytes.Count(b, b[:1]) == len(b) {
		return nil, errors.New("is one byte repeated, a placeholder rather than a key (generate one with `openssl rand -base64 32`)")
	}
	return b, nil
}
