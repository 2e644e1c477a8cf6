// Package store keeps session families: what tokengate remembers about a
// login so that refresh tokens can be rotated and replays detected. It has
// three backends, memory, file (bbolt) and redis, that behave alike: the
// storetest package holds the one conformance suite each of them passes.
// It does not import Caddy.
package store

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"
)

// ErrNotFound: no family with this id (never created, logged out, or gone
// with its deadline).
var ErrNotFound = errors.New("session family not found")

// ErrExists: Create was given an id that is taken.
var ErrExists = errors.New("session family already exists")

// Family is one login's chain of refresh tokens. The store keeps only
// SHA-256 hashes of refresh tokens, never a token.
type Family struct {
	// ID is the family id, also the first part of each of its refresh tokens.
	ID string `json:"id"`
	// Subject is the sub claim of the login's access token.
	Subject string `json:"sub"`
	// Claims is the claims snapshot new access tokens are minted from (JSON
	// object without iat, exp, nbf, jti).
	Claims []byte `json:"claims"`
	// Alg and KID name the key the API signed the login token with; new
	// access tokens are signed with it.
	Alg string `json:"alg"`
	KID string `json:"kid,omitempty"`
	// AccessTTL is the lifetime of minted access tokens.
	AccessTTL time.Duration `json:"access_ttl"`

	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	// Absolute is when the family ends whatever its use.
	Absolute time.Time `json:"absolute"`
	// Idle is how long the family lives without use.
	Idle time.Duration `json:"idle"`

	// Current is the hash of the one refresh token that rotates. Each
	// token's successor is derived from it (session package), so the token
	// Current replaced is recognised without being stored: its successor's
	// hash is Current.
	Current []byte `json:"cur"`
	// PrevAt is when Current replaced its predecessor (the grace starts).
	PrevAt time.Time `json:"prev_at,omitempty"`
	// Generation counts rotations.
	Generation int64 `json:"gen"`
	// Revoked is set when a replay was detected (at RevokedAt); the family
	// then refuses every token until it expires from the store.
	Revoked   bool      `json:"revoked,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitempty"`
	// Bridges map the hash (hex) of an expired access token to what inline
	// refresh last gave its holder, sealed under that token: the minted
	// access token and the refresh token it was minted with. A client that
	// keeps sending the same expired token is served from its bridge
	// instead of rotating on every request.
	Bridges map[string][]byte `json:"bridges,omitempty"`
}

// Deadline is when the family ends if unused from now on.
func (f *Family) Deadline() time.Time {
	d := f.LastUsed.Add(f.Idle)
	if f.Absolute.Before(d) {
		return f.Absolute
	}
	return d
}

// Outcome is what a rotation attempt found.
type Outcome int

// Rotation outcomes.
const (
	// Rotated: the current token was spent and the successor stored.
	Rotated Outcome = iota + 1
	// Grace: the previous token, within the reuse grace; the result carries
	// the successor it already produced.
	Grace
	// Reused: a spent token after the grace (or an older one): the family is
	// now revoked.
	Reused
	// Revoked: the family was revoked earlier.
	Revoked
	// Expired: past the idle or absolute deadline; the family is removed.
	Expired
	// Unknown: no such family, or a token that never belonged to it.
	Unknown
	// Stale: a probe presented a token that is neither current nor the
	// previous one within the grace; nothing was changed.
	Stale
	// Live: Peek found the family usable.
	Live
)

var outcomeNames = map[Outcome]string{
	Rotated: "rotated", Grace: "grace", Reused: "reused", Revoked: "revoked", Expired: "expired", Unknown: "unknown",
	Stale: "stale", Live: "live",
}

func (o Outcome) String() string { return outcomeNames[o] }

// Rotation asks a store to spend a refresh token.
type Rotation struct {
	ID string
	// Presented is the hash of the token presented.
	Presented []byte
	// Next is the hash of the presented token's successor: stored if
	// Presented is current; equal to Current if Presented is the token
	// Current replaced.
	Next []byte
	Now  time.Time
	// Grace is the reuse grace for the previous token.
	Grace time.Duration
	// Probe makes a token that is neither current nor in grace answer Stale
	// instead of revoking the family: inline refresh tries the tokens it
	// holds this way, since a tab may hold an older cookie than its bridge.
	Probe bool
	// BridgeKey, when set, names the bridge (hash of an expired access
	// token) to store BridgeSealed under if the rotation succeeds, in the
	// same atomic step; for Grace the result carries that bridge as it is.
	BridgeKey    []byte
	BridgeSealed []byte
}

// Result is a store's answer to a Rotation.
type Result struct {
	Outcome Outcome
	// Family is the family after the rotation, for Rotated and Grace.
	Family *Family
	// EndReason is "idle" or "lifetime" for Expired.
	EndReason string
	// Bridge is the sealed bridge named by the request's BridgeKey, if the
	// family has one (Grace and Peek).
	Bridge []byte
}

// Store keeps families. Every method is atomic with respect to the others
// across every process sharing the store. Errors other than ErrNotFound and
// ErrExists mean the store could not be reached or read: callers answer 503
// and change nothing.
type Store interface {
	// Create stores a new family.
	Create(ctx context.Context, f *Family) error
	// Get returns a family.
	Get(ctx context.Context, id string) (*Family, error)
	// Rotate spends a refresh token; see Decide for the rules.
	Rotate(ctx context.Context, r Rotation) (Result, error)
	// Peek reports whether the family is live (Live, Revoked, Expired,
	// Unknown) without changing it, with the family and the bridge named by
	// bridgeKey.
	Peek(ctx context.Context, id string, bridgeKey []byte, now time.Time) (Result, error)
	// Delete removes a family (logout); deleting a missing one is not an error.
	Delete(ctx context.Context, id string) error

	// PutGrant stores (or replaces) a job grant until its Expires.
	PutGrant(ctx context.Context, g *JobGrant) error
	// GetGrant returns a job grant live at now, or ErrNotFound.
	GetGrant(ctx context.Context, id string, now time.Time) (*JobGrant, error)
	// ShortenGrant moves a grant's expiry to until if that is sooner (a job
	// reported a terminal state); a missing grant is not an error.
	ShortenGrant(ctx context.Context, id string, until time.Time) error
	// Close releases the store's resources.
	Close() error
}

// Decide applies a Rotation to f, changing f in place, and reports the
// outcome. It is the rotation rule of every store that runs Go under its
// own lock or transaction (memory, file); the redis store runs the same
// rule as a Lua script. After Decide a store saves f when the outcome is
// Rotated or Reused, and deletes it when Expired.
func Decide(f *Family, r Rotation) Result {
	if res, ended := liveness(f, r.Now); ended {
		return res
	}
	switch {
	case equal(r.Presented, f.Current):
		f.PrevAt = r.Now
		f.Current = r.Next
		f.LastUsed = r.Now
		f.Generation++
		if len(r.BridgeKey) > 0 {
			if f.Bridges == nil {
				f.Bridges = map[string][]byte{}
			}
			f.Bridges[hex.EncodeToString(r.BridgeKey)] = r.BridgeSealed
		}
		return Result{Outcome: Rotated, Family: f}
	case equal(r.Next, f.Current) && r.Now.Sub(f.PrevAt) <= r.Grace:
		// The presented token is the one Current replaced, within the grace.
		return Result{Outcome: Grace, Family: f, Bridge: f.bridge(r.BridgeKey)}
	case r.Probe:
		return Result{Outcome: Stale}
	}
	// A token with this family's id that is not current is a spent token
	// past the grace, an older one, or a forgery with a guessed id: all are
	// replays as far as the family can tell, and the family must not
	// survive any of them.
	f.Revoked, f.RevokedAt = true, r.Now
	return Result{Outcome: Reused}
}

// liveness reports a revoked or ended family.
func liveness(f *Family, now time.Time) (Result, bool) {
	switch {
	case f.Revoked:
		return Result{Outcome: Revoked}, true
	case !now.Before(f.Absolute):
		return Result{Outcome: Expired, EndReason: "lifetime"}, true
	case !now.Before(f.LastUsed.Add(f.Idle)):
		return Result{Outcome: Expired, EndReason: "idle"}, true
	}
	return Result{}, false
}

// PeekFamily is Peek for stores that hold a *Family: it changes nothing.
func PeekFamily(f *Family, bridgeKey []byte, now time.Time) Result {
	if res, ended := liveness(f, now); ended {
		return res
	}
	return Result{Outcome: Live, Family: f, Bridge: f.bridge(bridgeKey)}
}

func (f *Family) bridge(key []byte) []byte {
	if len(key) == 0 {
		return nil
	}
	return f.Bridges[hex.EncodeToString(key)]
}

// equal compares token hashes in constant time; an absent hash matches nothing.
func equal(a, b []byte) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare(a, b) == 1
}

// RevokedRetention is how long a revoked family is kept so that later uses
// of its tokens are reported as revoked rather than unknown.
const RevokedRetention = 24 * time.Hour

// Expiry is when a store may forget f.
func (f *Family) Expiry() time.Time {
	if f.Revoked {
		return f.RevokedAt.Add(RevokedRetention)
	}
	return f.Deadline()
}

// Lister walks every family of a store, for operators' tools.
type Lister interface {
	Each(ctx context.Context, fn func(*Family) error) error
}

// Families returns the families of subject; the store must be a Lister.
func Families(ctx context.Context, s Store, subject string) ([]*Family, error) {
	l, ok := s.(Lister)
	if !ok {
		return nil, errors.New("this store cannot list sessions")
	}
	var out []*Family
	err := l.Each(ctx, func(f *Family) error {
		if f.Subject == subject {
			out = append(out, f)
		}
		return nil
	})
	return out, err
}
