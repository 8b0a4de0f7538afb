package auth

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// ParseHtpasswd reads an htpasswd file's users: one "name:hash" a line,
// blank lines and lines starting with # skipped. Only bcrypt hashes ($2a$,
// $2b$, $2y$: htpasswd -B) are accepted; any other kind (MD5 $apr1$, SHA1
// {SHA}, crypt, plain text) is an error naming the line, and so is a name
// given twice.
func ParseHtpasswd(data []byte) (map[string]string, error) {
	users := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d: want name:hash", n)
		}
		if !IsBcrypt(hash) {
			return nil, fmt.Errorf("line %d: user %q: %s hash; only bcrypt is accepted (htpasswd -B)", n, name, hashKind(hash))
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("line %d: user %q is listed twice", n, name)
		}
		users[name] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

// IsBcrypt reports whether hash is a well-formed bcrypt hash.
func IsBcrypt(hash string) bool {
	if len(hash) != 60 || !(strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$")) {
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}

// hashKind names the kind of a hash that is not bcrypt, for an error.
func hashKind(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$apr1$"):
		return "an MD5 ($apr1$)"
	case strings.HasPrefix(hash, "{SHA}"):
		return "a SHA-1 ({SHA})"
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		return "a SHA-crypt"
	case strings.HasPrefix(hash, "$2"):
		return "a malformed bcrypt"
	case len(hash) == 13:
		return "a crypt(3) DES"
	}
	return "an unknown (or plain text)"
}
