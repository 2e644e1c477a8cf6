// Package token verifies the access tokens an existing API signs, under the
// rules of RFC 8725: every key is bound to one algorithm, the header is checked
// before any key is chosen, the signature is checked before any claim is read,
// and exp is required. It does not import Caddy.
package token

import "fmt"

// Reason is why a token was refused. Its values form the fixed label set of
// the rejections metric and appear in 401 answers, so they never carry data
// from the request.
type Reason string

// The reasons a token is refused.
const (
	// ReasonMissing: no token was presented at all.
	ReasonMissing Reason = "missing"
	// ReasonOversized: the token (or the header carrying it) is over the size cap;
	// it was refused before any parsing.
	ReasonOversized Reason = "oversized"
	// ReasonMalformed: not three strictly base64url-encoded JSON segments.
	ReasonMalformed Reason = "malformed"
	// ReasonForbiddenHeader: the header names a parameter that lets the token
	// choose its own key or change its meaning (crit, jku, x5u, jwk, x5c, cty).
	ReasonForbiddenHeader Reason = "forbidden_header"
	// ReasonUnsupportedAlg: the algorithm is not bound to any configured key
	// (this covers alg "none" and HS/RS confusion).
	ReasonUnsupportedAlg Reason = "unsupported_alg"
	// ReasonUnknownKID: the kid names no configured or published key.
	ReasonUnknownKID Reason = "unknown_kid"
	// ReasonBadSignature: the signature does not verify with the key.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonBadClaims: exp missing, not numeric or not positive; iss or aud not
	// the configured ones; a registered claim of the wrong type.
	ReasonBadClaims Reason = "bad_claims"
	// ReasonNotYetValid: nbf or iat lies in the future beyond the leeway.
	ReasonNotYetValid Reason = "not_yet_valid"
	// ReasonExpired: correctly signed, every other rule holds, but exp has passed.
	ReasonExpired Reason = "expired"
	// ReasonWrongKind: a token of another kind (a job token) where an access
	// token belongs.
	ReasonWrongKind Reason = "wrong_token_kind"
)

// JobTokenTyp is the typ header of the job tokens tokengate mints. An access
// token must not carry it, so one kind is never accepted as the other.
const JobTokenTyp = "tokengate-job+jwt"

// Reasons lists every Reason, so metrics can start each label at zero.
var Reasons = []Reason{
	ReasonMissing, ReasonOversized, ReasonMalformed, ReasonForbiddenHeader,
	ReasonUnsupportedAlg, ReasonUnknownKID, ReasonBadSignature, ReasonBadClaims,
	ReasonNotYetValid, ReasonExpired, ReasonWrongKind,
}

// Error is a refusal: the Reason for metrics and clients, and a short
// description that never quotes the token.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("token %s: %s", e.Reason, e.Detail)
}

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}
