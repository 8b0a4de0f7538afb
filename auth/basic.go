package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

// Result is the outcome of checking a request's credentials.
type Result uint8

const (
	// Denied: no credentials, malformed ones, or wrong ones.
	Denied Result = iota
	// OK: the credentials are good.
	OK
	// Limited: the client failed too often lately; nothing was checked.
	Limited
	// Busy: every bcrypt slot stayed busy for BcryptWait; nothing was
	// checked.
	Busy
)

func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case Limited:
		return "limited"
	case Busy:
		return "busy"
	}
	return "denied"
}

// bcryptSlots bounds the bcrypt comparisons running at once, across every
// Basic verifier of the process: half the CPUs (at least one), so that a
// flood of guesses, even from many addresses, leaves the rest of the CPUs
// to the other requests.
var bcryptSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// BcryptWait is how long a check waits for a bcrypt slot before it gives up
// (Busy).
const BcryptWait = time.Second

// maxCredentials bounds the decoded "user:password" accepted (longer:
// Denied without bcrypt, which reads 72 bytes of a password at most).
const maxCredentials = 512

// saltLen is the length of the cache keys' salt.
const saltLen = 16

// BasicOptions configure a Basic verifier.
type BasicOptions struct {
	// Users maps names to bcrypt hashes (IsBcrypt).
	Users map[string]string
	// CacheTTL is how long verified credentials are remembered; 0: not
	// remembered.
	CacheTTL time.Duration
	// CacheSize bounds the credentials remembered.
	CacheSize int
	// FailureLimit failed checks per client address within FailureWindow;
	// beyond it the client is Limited. 0: no limit.
	FailureLimit  int
	FailureWindow time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Basic verifies HTTP basic credentials (RFC 7617) against bcrypt hashes.
//
// An unknown user costs the same as a wrong password: its password is
// compared against a dummy hash of the users' cost. Good credentials are
// remembered for a short while under a salted SHA-256 of name and
// password, so that a client that sends them on every request pays bcrypt
// once; failures are counted per client address, and a client beyond the
// limit is refused without running bcrypt at all.
type Basic struct {
	users    map[string][]byte
	dummy    []byte        // a hash of the users' highest cost, of a random password
	salt     [saltLen]byte // of the cache keys
	cache    *credCache
	failures *failures
	now      func() time.Time

	flight singleflight.Group // comparisons under way, by cache key
	runs   atomic.Uint64      // bcrypt comparisons run
}

// NewBasic returns a verifier of o.Users. It spends one bcrypt hash of the
// users' highest cost, for the dummy hash.
func NewBasic(o BasicOptions) (*Basic, error) {
	if len(o.Users) == 0 {
		return nil, errors.New("auth: basic: no users")
	}
	b := &Basic{users: make(map[string][]byte, len(o.Users)), now: o.Now}
	if b.now == nil {
		b.now = time.Now
	}
	cost := bcrypt.MinCost
	for name, hash := range o.Users {
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil || !IsBcrypt(hash) {
			return nil, errors.New("auth: basic: user " + name + ": not a bcrypt hash")
		}
		cost = max(cost, c)
		b.users[name] = []byte(hash)
	}
	var pw [18]byte
	_, _ = rand.Read(pw[:])
	_, _ = rand.Read(b.salt[:])
	dummy, err := bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(pw[:])), cost)
	if err != nil {
		return nil, err
	}
	b.dummy = dummy
	if o.CacheTTL > 0 && o.CacheSize > 0 {
		b.cache = newCredCache(o.CacheTTL, o.CacheSize)
	}
	if o.FailureLimit > 0 && o.FailureWindow > 0 {
		b.failures = newFailures(o.FailureLimit, o.FailureWindow, maxFailureClients)
	}
	return b, nil
}

// BcryptRuns counts the bcrypt comparisons the verifier has run.
func (b *Basic) BcryptRuns() uint64 { return b.runs.Load() }

// Check verifies the value of an Authorization header sent by client. It
// returns the user on OK, and on Limited how long until the client may try
// again.
func (b *Basic) Check(authorization []byte, client netip.Addr) (user string, r Result, retry time.Duration) {
	var buf [saltLen + maxCredentials]byte
	cred, ok := decodeBasic(buf[saltLen:saltLen], authorization)
	if !ok {
		return "", Denied, 0
	}
	copy(buf[:], b.salt[:])
	key := sha256.Sum256(buf[:saltLen+len(cred)])
	now := b.now()
	if b.cache != nil {
		if u, ok := b.cache.get(key, now); ok {
			return u, OK, 0
		}
	}
	if b.failures != nil {
		if blocked, wait := b.failures.blocked(client, now); blocked {
			return "", Limited, wait
		}
	}
	v := b.verify(key, cred, now)
	if v.r == Denied && b.failures != nil {
		b.failures.add(client, now)
	}
	return v.user, v.r, 0
}

// verdict is the result of one bcrypt comparison.
type verdict struct {
	user string
	r    Result
}

// verify compares cred with its user's hash, once for all the checks of the
// same credentials under way at one moment (a client's burst when its
// remembered credentials expire), and remembers good ones.
func (b *Basic) verify(key [32]byte, cred []byte, now time.Time) verdict {
	cred = bytes.Clone(cred) // the caller's is on its stack
	res, _, _ := b.flight.Do(string(key[:]), func() (any, error) {
		if b.cache != nil { // remembered since the caller looked?
			if u, ok := b.cache.get(key, now); ok {
				return verdict{u, OK}, nil
			}
		}
		name, password, _ := bytes.Cut(cred, []byte{':'})
		hash, known := b.users[string(name)]
		if !known {
			hash = b.dummy
		}
		if !acquireSlot() {
			return verdict{r: Busy}, nil
		}
		b.runs.Add(1)
		notePeak(inFlight.Add(1))
		err := bcrypt.CompareHashAndPassword(hash, password)
		inFlight.Add(-1)
		<-bcryptSlots
		if err != nil || !known {
			return verdict{r: Denied}, nil
		}
		user := string(name)
		if b.cache != nil {
			b.cache.put(key, user, now)
		}
		return verdict{user, OK}, nil
	})
	return res.(verdict)
}

// inFlight counts the bcrypt comparisons running; peak is its highest.
var inFlight, peak atomic.Int64

func notePeak(n int64) {
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
}

// BcryptPeak is the most bcrypt comparisons that ran at once in the
// process; BcryptSlots is the bound on them.
func BcryptPeak() int { return int(peak.Load()) }

// BcryptSlots is the bound on the bcrypt comparisons running at once.
func BcryptSlots() int { return cap(bcryptSlots) }

// acquireSlot takes a bcrypt slot, waiting BcryptWait at most.
func acquireSlot() bool {
	select {
	case bcryptSlots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(BcryptWait)
	defer t.Stop()
	select {
	case bcryptSlots <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// decodeBasic decodes the credentials of a "Basic" Authorization value
// into dst (of capacity maxCredentials): "user:password". ok is false when
// the value is of another scheme, malformed, too long, or has no colon.
func decodeBasic(dst, v []byte) (cred []byte, ok bool) {
	const scheme = "basic "
	if len(v) <= len(scheme) || !bytes.EqualFold(v[:len(scheme)], []byte(scheme)) {
		return nil, false
	}
	v = bytes.TrimLeft(v[len(scheme):], " ")
	v = bytes.TrimRight(v, " \t")
	if base64.StdEncoding.DecodedLen(len(v)) > cap(dst) {
		return nil, false
	}
	n, err := base64.StdEncoding.Decode(dst[:cap(dst)], v)
	if err != nil || bytes.IndexByte(dst[:n], ':') < 0 {
		return nil, false
	}
	return dst[:n], true
}
