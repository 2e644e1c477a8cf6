// Package session gives an API that has no refresh tokens a rotating
// refresh token per login (RFC 9700): every use spends the token and issues
// a successor; a spent token presented after the reuse grace revokes the
// whole family; inside the grace the previous token gets the same successor
// again, so parallel requests and several tabs never fork or end a session.
// New access tokens are minted from the login token's claims with the key
// the API signed it with, so the API accepts them unchanged. It does not
// import Caddy.
package session

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// Defaults for Config.
const (
	DefaultIdle      = 24 * time.Hour
	DefaultLifetime  = 7 * 24 * time.Hour
	DefaultGrace     = 10 * time.Second
	DefaultAccessTTL = time.Hour
)

// Config is the session policy.
type Config struct {
	// AccessTTL is the lifetime of minted access tokens; zero means the
	// lifetime of the login token (exp - iat), or DefaultAccessTTL when it
	// has no iat.
	AccessTTL time.Duration
	// Idle ends a family unused this long.
	Idle time.Duration
	// Lifetime ends a family this long after login, used or not.
	Lifetime time.Duration
	// Grace is how long the previous refresh token still gets its successor.
	Grace time.Duration
}

// Manager opens, rotates and ends sessions. Use it by pointer.
type Manager struct {
	Store store.Store
	Keys  *token.KeySet
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Config

	succOnce sync.Once
	succKey  *token.Key
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// ErrUnavailable wraps store failures: answer 503, keep the credential,
// try again. Nothing was changed that the client does not know about.
var ErrUnavailable = errors.New("session store unavailable")

// Refusal is a refresh token that cannot be used; Reason is one of the
// Reason* constants.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refresh token refused: " + r.Reason }

// Refusal reasons: also label values of the refresh metrics.
const (
	ReasonMalformed = "malformed" // not a refresh token of ours
	ReasonUnknown   = "unknown"   // no such session (logged out, expired and forgotten, never existed)
	ReasonReused    = "reused"    // a spent token replayed: the family is now revoked
	ReasonRevoked   = "revoked"   // the family was revoked after a replay
	ReasonIdle      = "idle"      // unused longer than the idle timeout
	ReasonLifetime  = "lifetime"  // past the absolute lifetime
	ReasonKeyGone   = "key_gone"  // the API's signing key is no longer configured
)

// Grant is a usable session credential set.
type Grant struct {
	FamilyID string
	Subject  string
	// AccessToken is a fresh access token (empty from Open: the client has
	// the API's own).
	AccessToken   string
	AccessExpires time.Time
	// RefreshToken is the refresh token to hand to the client.
	RefreshToken string
	// RefreshExpires is when the session ends if unused (for cookie
	// Max-Age and refresh_expires_in).
	RefreshExpires time.Time
	// Outcome is store.Rotated or store.Grace for a refresh.
	Outcome store.Outcome
}

const (
	idBytes     = 16
	secretBytes = 32
	idLen       = 22 // base64url of idBytes
	secretLen   = 43 // base64url of secretBytes
)

func random(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// parse splits a refresh token "<family id>.<secret>".
func parse(tok string) (id string, ok bool) {
	if len(tok) != idLen+1+secretLen || tok[idLen] != '.' {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(tok[:idLen]); err != nil {
		return "", false
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(tok[idLen+1:]); err != nil {
		return "", false
	}
	return tok[:idLen], true
}

func hash(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// Fingerprint names a refresh token in logs: the first 8 hex digits of its
// SHA-256.
func Fingerprint(tok string) string {
	return fmt.Sprintf("%x", hash(tok)[:4])
}

func newToken(id string) (string, error) {
	s, err := random(secretBytes)
	if err != nil {
		return "", err
	}
	return id + "." + s, nil
}

// sealFor seals plain so that only the holder of secret can open it:
// AES-256-GCM under SHA-256(label, secret), bound to the family id.
func sealFor(label, secret, id string, plain []byte) ([]byte, error) {
	aead := aeadFor(label, secret)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, []byte(id)), nil
}

func openFor(label, secret, id string, sealed []byte) ([]byte, error) {
	aead := aeadFor(label, secret)
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(id))
}

func aeadFor(label, secret string) cipher.AEAD {
	k := sha256.Sum256([]byte(label + "\x00" + secret))
	block, _ := aes.NewCipher(k[:])
	aead, _ := cipher.NewGCM(block)
	return aead
}

// successor is the token that replaces tok: its family id and the HMAC of
// tok under a key derived from tokengate's signing key. Being derived, it
// is the same for every request and every replica that spends tok, so
// parallel requests in the reuse grace get the one successor without the
// store keeping it, and the store keeps only hashes.
func (m *Manager) successor(tok string) (string, error) {
	m.succOnce.Do(func() {
		if base := m.Keys.FirstSigner(); base != nil {
			m.succKey, _ = base.Derive("tokengate refresh successor v1")
		}
	})
	if m.succKey == nil {
		return "", token.ErrCannotSign
	}
	mac, err := m.succKey.MAC(tok)
	if err != nil {
		return "", err
	}
	return tok[:idLen] + "." + base64.RawURLEncoding.EncodeToString(mac[:secretBytes]), nil
}

func (m *Manager) policy() Config {
	c := m.Config
	if c.Idle <= 0 {
		c.Idle = DefaultIdle
	}
	if c.Lifetime <= 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	return c
}

// Open starts a session for a verified login token and returns its first
// refresh token.
func (m *Manager) Open(ctx context.Context, login *token.Claims) (*Grant, error) {
	k := login.Key()
	if k == nil || !k.CanSign() {
		return nil, fmt.Errorf("opening session: the key that verified the login token %w", token.ErrCannotSign)
	}
	snap, err := login.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("opening session: %w", err)
	}
	p := m.policy()
	ttl := p.AccessTTL
	if ttl <= 0 {
		if ttl = login.Lifetime(); ttl <= 0 {
			ttl = DefaultAccessTTL
		}
	}
	id, err := random(idBytes)
	if err != nil {
		return nil, err
	}
	tok, err := newToken(id)
	if err != nil {
		return nil, err
	}
	now := m.now()
	f := &store.Family{
		ID: id, Subject: login.Subject, Claims: snap, Alg: k.Alg, KID: k.KID, AccessTTL: ttl,
		Created: now, LastUsed: now, Absolute: now.Add(p.Lifetime), Idle: p.Idle, Current: hash(tok),
	}
	if err := m.Store.Create(ctx, f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return &Grant{FamilyID: id, Subject: login.Subject, RefreshToken: tok, RefreshExpires: f.Deadline()}, nil
}

// Refresh spends a refresh token and returns a fresh access token and the
// successor. Errors are a *Refusal or wrap ErrUnavailable.
func (m *Manager) Refresh(ctx context.Context, tok string) (*Grant, error) {
	id, ok := parse(tok)
	if !ok {
		return nil, &Refusal{ReasonMalformed}
	}
	next, err := m.successor(tok)
	if err != nil {
		return nil, err
	}
	now := m.now()
	res, err := m.Store.Rotate(ctx, store.Rotation{
		ID: id, Presented: hash(tok), Next: hash(next), Now: now, Grace: m.policy().Grace,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	switch res.Outcome {
	case store.Rotated, store.Grace:
		// In the grace, next is the successor this token already produced:
		// no new branch.
	default:
		if ref := refusalFor(res); ref != nil {
			return nil, ref
		}
		return nil, &Refusal{ReasonUnknown}
	}
	f := res.Family
	access, exp, err := m.Mint(f, now)
	if err != nil {
		return nil, err
	}
	return &Grant{
		FamilyID: id, Subject: f.Subject, AccessToken: access, AccessExpires: exp,
		RefreshToken: next, RefreshExpires: f.Deadline(), Outcome: res.Outcome,
	}, nil
}

// Mint signs a fresh access token for family f, with the key the API
// signed its login token with.
func (m *Manager) Mint(f *store.Family, now time.Time) (string, time.Time, error) {
	k := m.Keys.SigningKey(f.Alg, f.KID)
	if k == nil {
		return "", time.Time{}, &Refusal{ReasonKeyGone}
	}
	ttl := f.AccessTTL
	if limit := f.Absolute.Sub(now) - time.Second; limit < ttl {
		// An access token never outlives its session (Mint rounds exp up
		// by less than a second).
		ttl = max(limit, 0)
	}
	return k.Mint(f.Claims, "JWT", now, ttl)
}

// Logout ends the session tok belongs to, if tok is its current or previous
// refresh token, and reports whether a live session ended. An unknown, malformed or foreign token changes nothing and
// is not an error: logout is idempotent and answers the same either way.
func (m *Manager) Logout(ctx context.Context, tok string) (ended bool, err error) {
	id, ok := parse(tok)
	if !ok {
		return false, nil
	}
	f, err := m.Store.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// The current token, or the one it replaced (whose successor is current).
	next, err := m.successor(tok)
	if err != nil {
		return false, err
	}
	if subtle.ConstantTimeCompare(hash(tok), f.Current) != 1 && subtle.ConstantTimeCompare(hash(next), f.Current) != 1 {
		return false, nil
	}
	if err := m.Store.Delete(ctx, id); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	// A family revoked after a replay had already ended.
	return !f.Revoked, nil
}
