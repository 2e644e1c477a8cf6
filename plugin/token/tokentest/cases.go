package tokentest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokengate/tokengate/plugin/token"
)

// Fixture describes the verifier the Cases are written for: an HS256 key
// with no kid holding Secret, an RS256 key with kid "rs1" (Keys.RSAPub),
// an ES256 key with kid "es1" (Keys.ECPub), and the given Issuer and Audience.
type Fixture struct {
	Secret   []byte
	Keys     *Keys
	Issuer   string
	Audience string
	Now      time.Time
}

// Case is one token and the verdict a correct verifier reaches on it.
type Case struct {
	Name  string
	Token string
	// Reason is the refusal; empty means the token is valid.
	Reason token.Reason
}

// Claims returns valid claims for sub with this fixture's iss and aud.
func (f Fixture) Claims(sub string, ttl time.Duration) map[string]any {
	c := Claims(sub, f.Now, ttl)
	if f.Issuer != "" {
		c["iss"] = f.Issuer
	}
	if f.Audience != "" {
		c["aud"] = f.Audience
	}
	return c
}

// HS signs claims with the fixture's secret under HS256.
func (f Fixture) HS(claims map[string]any) string {
	return Build(Header("HS256", ""), claims, HS256(f.Secret))
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func hdr(alg string, kv ...any) map[string]any { return with(Header(alg, ""), kv...) }

// Cases returns valid tokens, expired ones and every forgery named in
// DESIGN.md "Keys and tokens" and RFC 8725, each with its verdict.
func (f Fixture) Cases() []Case {
	ok := f.Claims("user-1", time.Hour)
	hs := HS256(f.Secret)
	rs := With(jwt.SigningMethodRS256, f.Keys.RSA)
	other := HS256([]byte("another-secret-of-at-least-32-bytes!!"))
	valid := f.HS(ok)
	dot := strings.LastIndexByte(valid, '.')

	// A signature whose last base64url character carries non-zero padding
	// bits: decodes to the same bytes in lax decoders, refused by strict ones.
	sig := valid[dot+1:]
	last := strings.IndexByte("AEIMQUYcgkosw048", sig[len(sig)-1])
	nonCanonical := valid[:dot+1] + sig[:len(sig)-1] + string("BFJNRVZdhlptx159"[max(last, 0)])

	// The "psychic signature" (CVE-2022-21449): r = s = 0.
	zeroSig := Build(Header("ES256", "es1"), ok, func(string) []byte { return make([]byte, 64) })
	// An ECDSA signature by a key that is not the configured one.
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// s replaced by n-s: a malleated but mathematically valid signature is
	// fine; n itself is not.
	nSig := make([]byte, 64)
	elliptic.P256().Params().N.FillBytes(nSig[:32])
	new(big.Int).Set(elliptic.P256().Params().N).FillBytes(nSig[32:])

	cases := []Case{
		{"valid HS256", valid, ""},
		{"valid RS256 with kid", Build(Header("RS256", "rs1"), ok, rs), ""},
		{"valid ES256 with kid", Build(Header("ES256", "es1"), ok, With(jwt.SigningMethodES256, f.Keys.EC)), ""},
		{"valid within leeway after exp", f.HS(with(ok, "exp", f.Now.Add(-10*time.Second).Unix())), ""},
		{"expired", f.HS(with(ok, "exp", f.Now.Add(-time.Hour).Unix(), "iat", f.Now.Add(-2*time.Hour).Unix())), token.ReasonExpired},
		{"wrong signature", Build(Header("HS256", ""), ok, other), token.ReasonBadSignature},
		{"payload changed after signing", valid[:strings.IndexByte(valid, '.')+1] + Segment(with(ok, "sub", "admin")) + valid[dot:], token.ReasonBadSignature},
		{"truncated signature", valid[:dot+1] + base64.RawURLEncoding.EncodeToString(hs(valid[:dot])[:20]), token.ReasonBadSignature},
		{"empty signature", valid[:dot+1], token.ReasonMalformed},
		{"alg none", Build(hdr("none"), ok, nil) + "x", token.ReasonUnsupportedAlg},
		{"alg none without signature", Build(hdr("none"), ok, nil), token.ReasonUnsupportedAlg},
		{"alg NoNe", Build(hdr("NoNe"), ok, hs), token.ReasonUnsupportedAlg},
		{"alg missing", Build(map[string]any{"typ": "JWT"}, ok, hs), token.ReasonMalformed},
		{"alg not a string", Build(map[string]any{"alg": 256}, ok, hs), token.ReasonMalformed},
		{"HS256 signed with the RSA public key, kid of the RSA key", Build(Header("HS256", "rs1"), ok, HS256(f.Keys.RSAPub)), token.ReasonUnsupportedAlg},
		{"HS256 signed with the RSA public key, no kid", Build(Header("HS256", ""), ok, HS256(f.Keys.RSAPub)), token.ReasonBadSignature},
		{"RS256 without kid when no RS256 key is kid-less", Build(Header("RS256", ""), ok, rs), ""},
		{"PS256 with an RS256 key's kid", Build(Header("PS256", "rs1"), ok, With(jwt.SigningMethodPS256, f.Keys.RSA)), token.ReasonUnsupportedAlg},
		{"HS512 not configured", Build(Header("HS512", ""), ok, With(jwt.SigningMethodHS512, f.Secret)), token.ReasonUnsupportedAlg},
		{"unknown kid", Build(Header("RS256", "nope"), ok, rs), token.ReasonUnknownKID},
		{"kid path traversal", Build(Header("HS256", "../../../../dev/null"), ok, HS256(nil)), token.ReasonUnknownKID},
		{"kid not a string", Build(hdr("HS256", "kid", 7), ok, hs), token.ReasonMalformed},
		{"crit header", Build(hdr("HS256", "crit", []string{"exp"}), ok, hs), token.ReasonForbiddenHeader},
		{"jku header", Build(hdr("RS256", "jku", "https://attacker.example/jwks.json", "kid", "rs1"), ok, rs), token.ReasonForbiddenHeader},
		{"x5u header", Build(hdr("RS256", "x5u", "https://attacker.example/cert.pem"), ok, rs), token.ReasonForbiddenHeader},
		{"embedded jwk header", Build(hdr("RS256", "jwk", map[string]any{"kty": "RSA", "n": "AQAB", "e": "AQAB"}), ok, rs), token.ReasonForbiddenHeader},
		{"x5c header", Build(hdr("RS256", "x5c", []string{base64.StdEncoding.EncodeToString(f.Keys.RSAPubDER)}), ok, rs), token.ReasonForbiddenHeader},
		{"cty header", Build(hdr("HS256", "cty", "JWT"), ok, hs), token.ReasonForbiddenHeader},
		{"psychic ECDSA signature (r=s=0)", zeroSig, token.ReasonBadSignature},
		{"ECDSA signature r=s=n", Build(Header("ES256", "es1"), ok, func(string) []byte { return nSig }), token.ReasonBadSignature},
		{"ECDSA signed by another key", Build(Header("ES256", "es1"), ok, With(jwt.SigningMethodES256, stranger)), token.ReasonBadSignature},
		{"missing exp", f.HS(with(ok, "exp", nil)), token.ReasonBadClaims},
		{"exp 0", f.HS(with(ok, "exp", 0)), token.ReasonBadClaims},
		{"exp as a string", f.HS(with(ok, "exp", "9999999999")), token.ReasonBadClaims},
		{"exp an array", f.HS(with(ok, "exp", []any{})), token.ReasonBadClaims},
		{"iat as a string", f.HS(with(ok, "iat", "1")), token.ReasonBadClaims},
		{"iat in the future", f.HS(with(ok, "iat", f.Now.Add(time.Hour).Unix())), token.ReasonNotYetValid},
		{"nbf in the future", f.HS(with(ok, "nbf", f.Now.Add(time.Hour).Unix())), token.ReasonNotYetValid},
		{"sub not a string", f.HS(with(ok, "sub", 42)), token.ReasonBadClaims},
		{"non-canonical base64 in the signature", nonCanonical, token.ReasonMalformed},
		{"padded base64", valid + "=", token.ReasonMalformed},
		{"standard base64 alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/", token.ReasonMalformed},
		{"four segments", valid + ".e30", token.ReasonMalformed},
		{"two segments", valid[:dot], token.ReasonMalformed},
		{"garbage", "not-a-token", token.ReasonMalformed},
		{"dots only", "..", token.ReasonMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{alg")) + valid[strings.IndexByte(valid, '.'):], token.ReasonMalformed},
		{"payload not JSON but signed", signedRaw(Segment(Header("HS256", ""))+"."+base64.RawURLEncoding.EncodeToString([]byte("not json")), hs), token.ReasonMalformed},
		{"oversized", valid + strings.Repeat("A", token.MaxTokenSize), token.ReasonOversized},
		{"job token kind", Build(with(Header("HS256", ""), "typ", token.JobTokenTyp), ok, hs), token.ReasonWrongKind},
	}
	if f.Issuer != "" {
		cases = append(cases,
			Case{"wrong issuer", f.HS(with(ok, "iss", "https://elsewhere.example")), token.ReasonBadClaims},
			Case{"missing issuer", f.HS(with(ok, "iss", nil)), token.ReasonBadClaims})
	}
	if f.Audience != "" {
		cases = append(cases,
			Case{"wrong audience", f.HS(with(ok, "aud", "other-api")), token.ReasonBadClaims},
			Case{"audience list with ours", f.HS(with(ok, "aud", []string{"other-api", f.Audience})), ""},
			Case{"audience of the wrong type", f.HS(with(ok, "aud", 5)), token.ReasonBadClaims})
	}
	return cases
}

func signedRaw(in string, s Signer) string {
	return in + "." + base64.RawURLEncoding.EncodeToString(s(in))
}
