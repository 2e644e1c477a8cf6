package token

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// MinHMACSecretLen is the shortest HMAC secret accepted without an opt-out:
// 32 bytes, the output size of SHA-256 (RFC 7518 s3.2 requires a key at
// least as long as the hash output).
const MinHMACSecretLen = 32

// ErrWeakSecret is returned by CheckHMACSecret; the message says why.
var ErrWeakSecret = errors.New("weak HMAC secret")

// commonSecrets are secrets seen in tutorials, defaults and leaked configs.
// A secret on this list is weak whatever its length.
var commonSecrets = map[string]bool{
	"secret": true, "changeme": true, "change-me": true, "password": true,
	"your-256-bit-secret": true, "your-secret-key": true, "jwt_secret": true,
	"jwtsecret": true, "supersecret": true, "mysecret": true, "secretkey": true,
	"secret-key": true, "default": true, "test": true, "development": true,
	"your_jwt_secret": true, "your-jwt-secret": true, "jatingupta9120": true,
	"this-is-a-very-long-secret-key-for-jwt":              true,
	"super-secret-key-that-is-at-least-32-chars":          true,
	"your-super-secret-jwt-key-change-this-in-production": true,
	"please-change-this-secret-in-production-now":         true,
	"0123456789abcdef0123456789abcdef":                    true,
	"00000000000000000000000000000000":                    true,
}

// CheckHMACSecret reports whether secret is strong enough to sign tokens that
// guard an API. It refuses secrets under MinHMACSecretLen bytes, secrets found
// on a list of common ones, and secrets of very few distinct bytes. The error
// wraps ErrWeakSecret and never quotes the secret.
func CheckHMACSecret(secret []byte) error {
	switch {
	case len(secret) < MinHMACSecretLen:
		return fmt.Errorf("%w: %d bytes, at least %d needed", ErrWeakSecret, len(secret), MinHMACSecretLen)
	case commonSecrets[strings.ToLower(string(secret))]:
		return fmt.Errorf("%w: it is a well-known published secret", ErrWeakSecret)
	case distinctBytes(secret) < 8:
		return fmt.Errorf("%w: it has fewer than 8 distinct characters", ErrWeakSecret)
	}
	return nil
}

func distinctBytes(b []byte) int {
	var seen [256]bool
	n := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			n++
		}
	}
	return n
}

// Key is one key bound to exactly one algorithm (RFC 8725 s3.1). A token is
// verified with a Key only if its alg header names that algorithm.
type Key struct {
	// Alg is the one algorithm this key is used with.
	Alg string
	// KID is the key id; empty when the API sets none.
	KID string
	// Weakness is why CheckHMACSecret refused this HMAC secret; nil when
	// the secret is strong or the key is asymmetric.
	Weakness error
	// Retired keys still verify tokens (issued before a key rotation) but
	// never sign; tokens they verify are re-signed with the current key
	// before they go upstream.
	Retired bool

	method jwt.SigningMethod
	verify any // []byte for HMAC, a public key otherwise
	sign   any // []byte for HMAC, a private key, or nil for verify-only keys
}

// CanSign reports whether the key holds private material (or an HMAC secret)
// and so can mint tokens the API accepts.
func (k *Key) CanSign() bool { return k.sign != nil && !k.Retired }

// Algorithms lists the algorithms a key can be configured with.
var Algorithms = []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "EdDSA"}

// ParseKey builds a Key for alg. For HS* the material is the secret itself;
// for the others it is a PEM file path (or PEM text) holding a public key, or
// a private key from which the public key is derived.
func ParseKey(alg, material, kid string) (*Key, error) {
	method := jwt.GetSigningMethod(alg)
	if method == nil || !isAllowedAlg(alg) {
		return nil, fmt.Errorf("algorithm %q is not supported; use one of %s", alg, strings.Join(Algorithms, ", "))
	}
	k := &Key{Alg: alg, KID: kid, method: method}
	if strings.HasPrefix(alg, "HS") {
		if material == "" {
			return nil, fmt.Errorf("%s secret is empty (is the environment variable set?)", alg)
		}
		secret := []byte(material)
		k.verify, k.sign = secret, secret
		k.Weakness = CheckHMACSecret(secret)
		return k, nil
	}
	pemBytes, err := readPEM(material)
	if err != nil {
		return nil, err
	}
	pub, priv, err := parseAsymmetric(alg, pemBytes)
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", alg, err)
	}
	k.verify, k.sign = pub, priv
	return k, nil
}

func isAllowedAlg(alg string) bool {
	for _, a := range Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

func readPEM(material string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(material), "-----BEGIN") {
		return []byte(material), nil
	}
	if material == "" {
		return nil, errors.New("no PEM file given")
	}
	b, err := os.ReadFile(material)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	return b, nil
}

func parseAsymmetric(alg string, pemBytes []byte) (pub, priv any, err error) {
	isPrivate := bytes.Contains(pemBytes, []byte("PRIVATE KEY"))
	switch alg {
	case "RS256", "PS256":
		if isPrivate {
			p, err := jwt.ParseRSAPrivateKeyFromPEM(pemBytes)
			if err != nil {
				return nil, nil, err
			}
			return &p.PublicKey, p, checkRSA(&p.PublicKey)
		}
		p, err := jwt.ParseRSAPublicKeyFromPEM(pemBytes)
		if err != nil {
			return nil, nil, err
		}
		return p, nil, checkRSA(p)
	case "ES256":
		var p *ecdsa.PublicKey
		if isPrivate {
			k, err := jwt.ParseECPrivateKeyFromPEM(pemBytes)
			if err != nil {
				return nil, nil, err
			}
			p, priv = &k.PublicKey, k
		} else if p, err = jwt.ParseECPublicKeyFromPEM(pemBytes); err != nil {
			return nil, nil, err
		}
		if p.Curve != elliptic.P256() {
			return nil, nil, errors.New("ES256 needs a P-256 key")
		}
		return p, priv, nil
	case "EdDSA":
		if isPrivate {
			k, err := jwt.ParseEdPrivateKeyFromPEM(pemBytes)
			if err != nil {
				return nil, nil, err
			}
			return k.(crypto.Signer).Public(), k, nil
		}
		p, err := jwt.ParseEdPublicKeyFromPEM(pemBytes)
		if err != nil {
			return nil, nil, err
		}
		if _, ok := p.(ed25519.PublicKey); !ok {
			return nil, nil, errors.New("EdDSA needs an Ed25519 key")
		}
		return p, nil, nil
	}
	return nil, nil, fmt.Errorf("algorithm %q has no asymmetric key type", alg)
}

func checkRSA(p *rsa.PublicKey) error {
	if p.N.BitLen() < 2048 {
		return fmt.Errorf("RSA key of %d bits; at least 2048 needed", p.N.BitLen())
	}
	return nil
}

// KeySet is the set of keys a Verifier may use: configured keys, looked up by
// kid or by algorithm, and optionally the keys published at JWKS URLs.
type KeySet struct {
	byKID map[string]*Key
	byAlg map[string][]*Key
	all   []*Key
	jwks  jwkset.Storage
}

// NewKeySet indexes keys. Two keys may not share a kid.
func NewKeySet(keys []*Key) (*KeySet, error) {
	ks := &KeySet{byKID: map[string]*Key{}, byAlg: map[string][]*Key{}}
	for _, k := range keys {
		if k.KID != "" {
			if _, dup := ks.byKID[k.KID]; dup {
				return nil, fmt.Errorf("two keys share kid %q", k.KID)
			}
			ks.byKID[k.KID] = k
		}
		ks.byAlg[k.Alg] = append(ks.byAlg[k.Alg], k)
		ks.all = append(ks.all, k)
	}
	return ks, nil
}

// WithJWKS adds verification-only keys published at urls, fetched and kept
// fresh by keyfunc until ctx ends. An unreachable URL at start is not fatal:
// the set is fetched again in the background, and tokens naming its keys are
// refused as unknown_kid meanwhile.
func (ks *KeySet) WithJWKS(ctx context.Context, urls []string, refresh time.Duration) error {
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, urls, keyfunc.Override{
		HTTPTimeout:      5 * time.Second,
		RefreshInterval:  refresh,
		RateLimitWaitMax: time.Second,
	})
	if err != nil {
		return fmt.Errorf("setting up JWKS: %w", err)
	}
	ks.jwks = kf.Storage()
	return nil
}

// candidates returns the keys a token with this alg and kid may be verified
// with, or the refusal when there are none.
func (ks *KeySet) candidates(ctx context.Context, alg, kid string) ([]*Key, *Error) {
	if kid != "" {
		if k, ok := ks.byKID[kid]; ok {
			if k.Alg != alg {
				return nil, refuse(ReasonUnsupportedAlg, "key %q is bound to %s, not %s", kid, k.Alg, alg)
			}
			return []*Key{k}, nil
		}
		if ks.jwks != nil {
			return ks.jwksKey(ctx, alg, kid)
		}
		return nil, refuse(ReasonUnknownKID, "no key with this kid")
	}
	if keys := ks.byAlg[alg]; len(keys) > 0 {
		return keys, nil
	}
	if ks.jwks != nil && isAsymmetric(alg) {
		return ks.jwksAll(ctx, alg)
	}
	return nil, refuse(ReasonUnsupportedAlg, "algorithm %s is not accepted", alg)
}

func isAsymmetric(alg string) bool { return isAllowedAlg(alg) && !strings.HasPrefix(alg, "HS") }

// jwkKey binds a published JWK to one algorithm: its own alg if it states one,
// else the one algorithm its key type allows. Symmetric JWKs are never used.
func jwkKey(j jwkset.JWK, alg string) (*Key, bool) {
	if !isAsymmetric(alg) {
		return nil, false
	}
	if a := j.Marshal().ALG.String(); a != "" && a != alg {
		return nil, false
	}
	pub := j.Key()
	if p, ok := pub.(interface{ Public() crypto.PublicKey }); ok {
		pub = p.Public()
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if (alg != "RS256" && alg != "PS256") || checkRSA(p) != nil {
			return nil, false
		}
	case *ecdsa.PublicKey:
		if alg != "ES256" || p.Curve != elliptic.P256() {
			return nil, false
		}
	case ed25519.PublicKey:
		if alg != "EdDSA" {
			return nil, false
		}
	default:
		return nil, false
	}
	return &Key{Alg: alg, KID: j.Marshal().KID, method: jwt.GetSigningMethod(alg), verify: pub}, true
}

func (ks *KeySet) jwksKey(ctx context.Context, alg, kid string) ([]*Key, *Error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	j, err := ks.jwks.KeyRead(ctx, kid)
	if err != nil {
		return nil, refuse(ReasonUnknownKID, "no key with this kid")
	}
	k, ok := jwkKey(j, alg)
	if !ok {
		return nil, refuse(ReasonUnsupportedAlg, "published key %q is not usable with %s", kid, alg)
	}
	return []*Key{k}, nil
}

func (ks *KeySet) jwksAll(ctx context.Context, alg string) ([]*Key, *Error) {
	all, err := ks.jwks.KeyReadAll(ctx)
	if err != nil {
		return nil, refuse(ReasonUnknownKID, "published keys unavailable")
	}
	var keys []*Key
	for _, j := range all {
		if k, ok := jwkKey(j, alg); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, refuse(ReasonUnsupportedAlg, "algorithm %s is not accepted", alg)
	}
	return keys, nil
}
