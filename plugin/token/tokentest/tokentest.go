// Package tokentest builds JWTs for tests: well-formed ones and the forgeries
// an attacker would try. Header and payload are given as maps so that a test
// can put anything in them, including what a real library would refuse.
package tokentest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer signs the signing input (header.payload) and returns the raw signature.
type Signer func(signingInput string) []byte

// Segment encodes v as JSON in unpadded base64url.
func Segment(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Build assembles header.payload.signature; a nil sign leaves the signature empty.
func Build(header, claims map[string]any, sign Signer) string {
	in := Segment(header) + "." + Segment(claims)
	var sig []byte
	if sign != nil {
		sig = sign(in)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// With signs with a golang-jwt method and key.
func With(method jwt.SigningMethod, key any) Signer {
	return func(in string) []byte {
		sig, err := method.Sign(in, key)
		if err != nil {
			panic(err)
		}
		return sig
	}
}

// HS256 signs with an HMAC-SHA256 secret.
func HS256(secret []byte) Signer { return With(jwt.SigningMethodHS256, secret) }

// Claims returns the claims of a token of the stand-in API's shape, valid
// from now for ttl.
func Claims(sub string, now time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"sub": sub, "email": sub + "@example.com", "role": "user",
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
}

// Header returns {"alg": alg, "typ": "JWT"} plus kid when given.
func Header(alg, kid string) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

// Keys are asymmetric test keys and their public halves in PEM.
type Keys struct {
	RSA       *rsa.PrivateKey
	RSAPub    []byte
	RSAPriv   []byte
	EC        *ecdsa.PrivateKey
	ECPub     []byte
	Ed        ed25519.PrivateKey
	EdPub     []byte
	RSAPubDER []byte
}

// NewKeys generates one key of each asymmetric kind.
func NewKeys(t testing.TB) *Keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &Keys{RSA: rk, EC: ek, Ed: edk}
	k.RSAPub, k.RSAPubDER = pubPEM(t, &rk.PublicKey)
	k.ECPub, _ = pubPEM(t, &ek.PublicKey)
	k.EdPub, _ = pubPEM(t, edk.Public())
	priv, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	k.RSAPriv = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})
	return k
}

func pubPEM(t testing.TB, pub crypto.PublicKey) (pemBytes, der []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), der
}
