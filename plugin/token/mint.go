package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrCannotSign: the key has no private half (a public key or a JWKS key).
var ErrCannotSign = errors.New("key cannot sign: it holds no private key or secret")

// Mint signs a token with k: the claims of snapshot (a JSON object) plus a
// fresh iat, exp = now + ttl (rounded up to a whole second) and a random
// jti. typ is the header's typ
// ("JWT" for access tokens). It returns the token and its expiry.
func (k *Key) Mint(snapshot []byte, typ string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	tok, _, exp, err := k.mint(snapshot, typ, now, ttl)
	return tok, exp, err
}

// MintClaims is Mint that also returns the minted token's claims, for a
// caller that needs them (identity headers) without verifying its own token.
func (k *Key) MintClaims(snapshot []byte, typ string, now time.Time, ttl time.Duration) (string, *Claims, error) {
	tok, payload, _, err := k.mint(snapshot, typ, now, ttl)
	if err != nil {
		return "", nil, err
	}
	c, err := (&Verifier{Now: func() time.Time { return now }}).claims(payload)
	if err != nil {
		return "", nil, fmt.Errorf("claims of a minted token: %w", err)
	}
	c.key = k
	return tok, c, nil
}

func (k *Key) mint(snapshot []byte, typ string, now time.Time, ttl time.Duration) (string, []byte, time.Time, error) {
	if !k.CanSign() {
		return "", nil, time.Time{}, ErrCannotSign
	}
	claims := map[string]json.RawMessage{}
	if len(snapshot) > 0 {
		if err := json.Unmarshal(snapshot, &claims); err != nil {
			return "", nil, time.Time{}, fmt.Errorf("claims snapshot: %w", err)
		}
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", nil, time.Time{}, err
	}
	// NumericDate has whole seconds: round exp up, so that a token lives at
	// least ttl (a short ttl truncated would lose up to a second of it).
	exp := now.Add(ttl)
	if exp.Nanosecond() != 0 {
		exp = exp.Truncate(time.Second).Add(time.Second)
	}
	claims["iat"] = json.RawMessage(strconv.FormatInt(now.Unix(), 10))
	claims["exp"] = json.RawMessage(strconv.FormatInt(exp.Unix(), 10))
	claims["jti"] = json.RawMessage(`"` + hex.EncodeToString(jti[:]) + `"`)
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	header := map[string]string{"alg": k.Alg, "typ": typ}
	if k.KID != "" {
		header["kid"] = k.KID
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	in := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig, err := k.method.Sign(in, k.sign)
	if err != nil {
		return "", nil, time.Time{}, fmt.Errorf("signing: %w", err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), payload, exp, nil
}

// Derive returns an HS256 key, bound to label, derived from k's secret or
// private key: tokengate signs its own tokens (job tokens) with it, so the
// API, which knows only k, can never accept them, and every replica
// configured with k derives the same key.
func (k *Key) Derive(label string) (*Key, error) {
	var material []byte
	switch s := k.sign.(type) {
	case nil:
		return nil, ErrCannotSign
	case []byte:
		material = s
	default:
		der, err := x509.MarshalPKCS8PrivateKey(s)
		if err != nil {
			return nil, fmt.Errorf("deriving from %s key: %w", k.Alg, err)
		}
		material = der
	}
	mac := hmac.New(sha256.New, material)
	mac.Write([]byte(label))
	secret := mac.Sum(nil)
	// The kid names the derived key without revealing it, so tokens of a
	// retired key's derived key are still found after a rotation.
	id := sha256.Sum256(append([]byte("kid\x00"), secret...))
	return &Key{Alg: "HS256", KID: hex.EncodeToString(id[:6]), method: jwt.SigningMethodHS256,
		verify: secret, sign: secret, Retired: k.Retired}, nil
}

// MAC is the HMAC of data under a derived (HS256) key, or a signature
// under any other key that can sign; retired keys included.
func (k *Key) MAC(data string) ([]byte, error) {
	if k.sign == nil {
		return nil, ErrCannotSign
	}
	return k.method.Sign(data, k.sign)
}

// Signers returns every key with private material, the current ones first
// and retired ones after, in configuration order.
func (ks *KeySet) Signers() []*Key {
	var cur, old []*Key
	for _, k := range ks.all {
		switch {
		case k.sign == nil:
		case k.Retired:
			old = append(old, k)
		default:
			cur = append(cur, k)
		}
	}
	return append(cur, old...)
}

// FirstSigner returns the first configured key that can sign, or nil.
func (ks *KeySet) FirstSigner() *Key {
	for _, k := range ks.all {
		if k.CanSign() {
			return k
		}
	}
	return nil
}

// SigningKey returns the key to mint with for a session whose login token
// was signed with alg and kid: the key with that kid, or else (no kid, or
// that key retired or removed since) the first current key bound to alg
// that can sign. Nil when there is none.
func (ks *KeySet) SigningKey(alg, kid string) *Key {
	if k := ks.byKID[kid]; kid != "" && k != nil && k.Alg == alg && k.CanSign() {
		return k
	}
	for _, k := range ks.byAlg[alg] {
		if k.CanSign() {
			return k
		}
	}
	return nil
}

// CanSign reports whether any configured key can mint tokens.
func (ks *KeySet) CanSign() bool {
	for _, k := range ks.all {
		if k.CanSign() {
			return true
		}
	}
	return false
}
