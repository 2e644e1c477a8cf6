package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxTokenSize caps the token (and the header carrying it) before any parsing.
const MaxTokenSize = 8 << 10

// MaxLeeway caps the configurable clock-skew allowance: a larger one would
// quietly extend every token's life.
const MaxLeeway = 5 * time.Minute

// DefaultLeeway is the clock-skew allowance when none is configured.
const DefaultLeeway = 30 * time.Second

// forbiddenHeaders let a token pick its own key or change how it is read
// (RFC 8725 s3.10, RFC 7515 s4.1); an access token of this API has no use
// for any of them.
var forbiddenHeaders = [...]string{"crit", "jku", "x5u", "jwk", "x5c", "cty", "b64", "zip"}

var b64 = base64.RawURLEncoding.Strict()

// Verifier checks access tokens. It is safe for concurrent use.
type Verifier struct {
	Keys *KeySet
	// Issuer, when set, must equal the iss claim.
	Issuer string
	// Audience, when set, must share at least one value with the aud claim.
	Audience []string
	// Leeway allows for clock skew on exp, nbf and iat.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RejectTyp lists typ header values refused with ReasonWrongKind
	// (tokens tokengate mints for other purposes).
	RejectTyp []string
	// RequireTyp, when set, is the only typ header accepted (job tokens);
	// any other is refused with ReasonWrongKind.
	RequireTyp string
	// Cache, when set, remembers verified tokens; see Cache.
	Cache *Cache
}

// Claims are the verified claims of a token: registered claims parsed, the
// others kept as raw JSON. Claims are never modified after Verify returns
// them, so one value may be shared by concurrent requests.
type Claims struct {
	Subject   string
	Issuer    string
	Audience  []string
	ExpiresAt time.Time
	IssuedAt  time.Time // zero when absent
	NotBefore time.Time // zero when absent

	raw map[string]json.RawMessage
	key *Key
}

// Key is the key whose signature verified the token.
func (c *Claims) Key() *Key { return c.key }

// Lifetime is exp - iat: how long the issuer made the token valid. Zero
// when the token has no iat.
func (c *Claims) Lifetime() time.Duration {
	if c.IssuedAt.IsZero() {
		return 0
	}
	return c.ExpiresAt.Sub(c.IssuedAt)
}

// timeClaims are set afresh on every minted token, so they are left out of
// a snapshot.
var timeClaims = []string{"iat", "exp", "nbf", "jti"}

// Snapshot is the token's claims as a JSON object without iat, exp, nbf
// and jti: what a session keeps to mint the same identity again.
func (c *Claims) Snapshot() ([]byte, error) {
	m := make(map[string]json.RawMessage, len(c.raw))
	for k, v := range c.raw {
		m[k] = v
	}
	for _, k := range timeClaims {
		delete(m, k)
	}
	return json.Marshal(m)
}

type header struct {
	Alg, Kid, Typ string
}

// Verify checks raw and returns its claims. On any refusal the error is an
// *Error. Claims are returned with an error only for ReasonExpired: the
// signature and every other rule held, so the caller may use them to refresh.
// Claims of a token that failed in any other way are never decoded.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if raw == "" {
		return nil, refuse(ReasonMissing, "no token")
	}
	if len(raw) > MaxTokenSize {
		return nil, refuse(ReasonOversized, "token over %d bytes", MaxTokenSize)
	}
	var now time.Time
	if v.Cache != nil {
		now = v.now()
		if c := v.Cache.get(raw, now); c != nil {
			return c, nil
		}
	}
	c, err := v.verify(ctx, raw)
	if err == nil && v.Cache != nil {
		v.Cache.put(raw, c, now, v.Leeway)
	}
	return c, err
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Claims, error) {
	dot1 := strings.IndexByte(raw, '.')
	dot2 := strings.LastIndexByte(raw, '.')
	if dot1 <= 0 || dot2 == dot1 || strings.IndexByte(raw[dot1+1:dot2], '.') >= 0 {
		return nil, refuse(ReasonMalformed, "not three dot-separated segments")
	}
	h, err := v.header(raw[:dot1])
	if err != nil {
		return nil, err
	}
	keys, rerr := v.Keys.candidates(ctx, h.Alg, h.Kid)
	if rerr != nil {
		return nil, rerr
	}
	sig, err2 := b64.DecodeString(raw[dot2+1:])
	if err2 != nil || len(sig) == 0 {
		return nil, refuse(ReasonMalformed, "signature is empty or not strict base64url")
	}
	signed := raw[:dot2]
	var verified *Key
	for _, k := range keys {
		if k.method.Verify(signed, sig, k.verify) == nil {
			verified = k
			break
		}
	}
	if verified == nil {
		return nil, refuse(ReasonBadSignature, "signature does not verify")
	}
	payload, err2 := b64.DecodeString(raw[dot1+1 : dot2])
	if err2 != nil {
		return nil, refuse(ReasonMalformed, "payload is not strict base64url")
	}
	c, cerr := v.claims(payload)
	if c != nil {
		c.key = verified
	}
	return c, cerr
}

func (v *Verifier) header(seg string) (*header, *Error) {
	hb, err := b64.DecodeString(seg)
	if err != nil {
		return nil, refuse(ReasonMalformed, "header is not strict base64url")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(hb, &fields); err != nil || fields == nil {
		return nil, refuse(ReasonMalformed, "header is not a JSON object")
	}
	for _, name := range forbiddenHeaders {
		if _, ok := fields[name]; ok {
			return nil, refuse(ReasonForbiddenHeader, "header parameter %q is not accepted", name)
		}
	}
	var h header
	var okAlg, okKid, okTyp bool
	h.Alg, okAlg = optString(fields["alg"])
	h.Kid, okKid = optString(fields["kid"])
	h.Typ, okTyp = optString(fields["typ"])
	if !okAlg || !okKid || !okTyp {
		return nil, refuse(ReasonMalformed, "header alg, kid and typ must be strings")
	}
	if h.Alg == "" {
		return nil, refuse(ReasonMalformed, "header has no alg")
	}
	if v.RequireTyp != "" && !strings.EqualFold(h.Typ, v.RequireTyp) {
		return nil, refuse(ReasonWrongKind, "not a token of the kind this route takes")
	}
	for _, t := range v.RejectTyp {
		if strings.EqualFold(h.Typ, t) {
			return nil, refuse(ReasonWrongKind, "a token of another kind is not an access token")
		}
	}
	return &h, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) claims(payload []byte) (*Claims, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, refuse(ReasonMalformed, "payload is not a JSON object")
	}
	c := &Claims{raw: raw}
	var ok bool
	if c.Subject, ok = optString(raw["sub"]); !ok {
		return nil, refuse(ReasonBadClaims, "sub is not a string")
	}
	if c.Issuer, ok = optString(raw["iss"]); !ok {
		return nil, refuse(ReasonBadClaims, "iss is not a string")
	}
	if c.Audience, ok = audience(raw["aud"]); !ok {
		return nil, refuse(ReasonBadClaims, "aud is not a string or array of strings")
	}
	if raw["exp"] == nil {
		return nil, refuse(ReasonBadClaims, "exp is required")
	}
	if c.ExpiresAt, ok = numericDate(raw["exp"]); !ok || c.ExpiresAt.Unix() <= 0 {
		return nil, refuse(ReasonBadClaims, "exp must be a positive number")
	}
	if r := raw["iat"]; r != nil {
		if c.IssuedAt, ok = numericDate(r); !ok {
			return nil, refuse(ReasonBadClaims, "iat must be a number")
		}
	}
	if r := raw["nbf"]; r != nil {
		if c.NotBefore, ok = numericDate(r); !ok {
			return nil, refuse(ReasonBadClaims, "nbf must be a number")
		}
	}
	if v.Issuer != "" && c.Issuer != v.Issuer {
		return nil, refuse(ReasonBadClaims, "issuer is not the expected one")
	}
	if len(v.Audience) > 0 && !intersects(c.Audience, v.Audience) {
		return nil, refuse(ReasonBadClaims, "audience is not the expected one")
	}
	now := v.now()
	if !c.NotBefore.IsZero() && c.NotBefore.After(now.Add(v.Leeway)) {
		return nil, refuse(ReasonNotYetValid, "token is not valid yet (nbf)")
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(now.Add(v.Leeway)) {
		return nil, refuse(ReasonNotYetValid, "token is issued in the future (iat)")
	}
	if !now.Before(c.ExpiresAt.Add(v.Leeway)) {
		return c, refuse(ReasonExpired, "token has expired")
	}
	return c, nil
}

// optString decodes an optional JSON string; absent is "", true. Strings
// without escapes, the common case, skip the reflective decoder.
func optString(raw json.RawMessage) (string, bool) {
	if raw == nil {
		return "", true
	}
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' && bytes.IndexByte(raw[1:n-1], '\\') < 0 && bytes.IndexByte(raw[1:n-1], '"') < 0 {
		return string(raw[1 : n-1]), true
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

func audience(raw json.RawMessage) ([]string, bool) {
	if raw == nil {
		return nil, true
	}
	if s, ok := optString(raw); ok {
		return []string{s}, true
	}
	var list []string
	return list, json.Unmarshal(raw, &list) == nil
}

// numericDate accepts only a JSON number (RFC 7519 s2 NumericDate), never a
// numeric string.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f > 1e11 || f < -1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// Text returns the claim name as text for a header or placeholder: strings as
// they are, numbers and booleans in their JSON form, arrays of strings joined
// with commas, anything else as compact JSON. Absent and null claims are
// reported absent.
func (c *Claims) Text(name string) (string, bool) {
	raw, ok := c.raw[name]
	if !ok || len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		return optString(raw)
	case 'n':
		return "", false
	case '[':
		var list []string
		if json.Unmarshal(raw, &list) == nil {
			return strings.Join(list, ","), true
		}
	case '{':
	default: // numbers, true, false
		return string(raw), true
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		return "", false
	}
	return compact.String(), true
}
