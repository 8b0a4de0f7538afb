// Command authgen writes what bench/scenario_auth.sh needs: a JWKS of a
// fresh RS256 key and a token it signed (valid for a day), and a bcrypt
// hash (cost 10) of the basic password.
//
//	authgen -dir bench/.out -iss https://bench.example/ -aud bench -password PW
package main

import (
	"flag"
	"log"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-proxy/rampart/auth/authtest"
)

func main() {
	dir := flag.String("dir", ".", "where to write jwks.json, token.txt and basic.hash")
	iss := flag.String("iss", "https://bench.example/", "the token's issuer")
	aud := flag.String("aud", "bench", "the token's audience")
	password := flag.String("password", "bench-password", "the basic password to hash")
	flag.Parse()
	key := authtest.NewKey("bench", "RS256")
	jwks, err := authtest.JWKS(key)
	if err != nil {
		log.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(*password), bcrypt.DefaultCost)
	if err != nil {
		log.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"jwks.json":  jwks,
		"token.txt":  []byte(key.Sign(authtest.Claims("bench-user", *iss, *aud, 24*time.Hour))),
		"basic.hash": hash,
	} {
		if err := os.WriteFile(filepath.Join(*dir, name), data, 0o600); err != nil {
			log.Fatal(err)
		}
	}
}
