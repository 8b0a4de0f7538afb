package auth

import (
	"strings"
	"testing"
)

func TestParseHtpasswd(t *testing.T) {
	good := hashOf(t, "pw")
	tests := []struct {
		name    string
		file    string
		want    int    // users
		wantErr string // part of the error
	}{
		{"bcrypt", "alice:" + good + "\n", 1, ""},
		{"comments and blanks", "# users\n\nalice:" + good + "\n  \nbob:" + good, 2, ""},
		{"apr1", "alice:" + good + "\nbob:$apr1$abc$def\n", 0, "line 2: user \"bob\": an MD5 ($apr1$) hash"},
		{"sha1", "bob:{SHA}abc=\n", 0, "line 1: user \"bob\": a SHA-1"},
		{"plain text", "bob:secret\n", 0, "line 1: user \"bob\": an unknown (or plain text) hash"},
		{"truncated bcrypt", "bob:" + good[:40] + "\n", 0, "malformed bcrypt"},
		{"no colon", "bob\n", 0, "line 1: want name:hash"},
		{"twice", "bob:" + good + "\nbob:" + good + "\n", 0, "line 2: user \"bob\" is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			users, err := ParseHtpasswd([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v; want one with %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the hash: %v", err)
				}
				return
			}
			if err != nil || len(users) != tt.want {
				t.Fatalf("got %d users, %v; want %d", len(users), err, tt.want)
			}
		})
	}
}
