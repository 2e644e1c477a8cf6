package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// More refusal reasons, for inline refresh.
const (
	// ReasonSubject: the expired access token's subject is not the session's.
	ReasonSubject = "subject_mismatch"
	// ReasonStale: neither the presented refresh token nor the one tokengate
	// last gave this client is current any more (the session moved on
	// elsewhere); nothing was revoked.
	ReasonStale = "stale"
)

// bridge is what inline refresh last gave the holder of one expired access
// token; it is stored sealed under that token.
type bridge struct {
	Access  string `json:"a"`
	Expires int64  `json:"e"`
	Refresh string `json:"r"`
}

// bridgeLabel seals a bridge under the expired access token it serves.
const bridgeLabel = "tokengate bridge v1"

func sealBridge(b bridge, expired, id string) ([]byte, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return sealFor(bridgeLabel, expired, id, plain)
}

func openBridge(sealed []byte, expired, id string) (*bridge, bool) {
	plain, err := openFor(bridgeLabel, expired, id, sealed)
	if err != nil {
		return nil, false
	}
	var b bridge
	if json.Unmarshal(plain, &b) != nil {
		return nil, false
	}
	return &b, true
}

// freshFor is how long before its expiry a bridged access token is
// replaced: a tenth of the access TTL, at most 5 seconds.
func freshFor(ttl time.Duration) time.Duration {
	return min(ttl/10, 5*time.Second)
}

// Inline serves a request that carries an expired (but correctly signed)
// access token, expiredRaw with its claims, and the refresh token refresh.
// It returns the access token to forward upstream and the refresh token the
// client should hold next (Outcome Live when an earlier inline refresh for
// the same expired token still serves, Rotated or Grace when it rotated).
//
// The same expired token presented again, by this replica or another one
// sharing the store, is served from its bridge until the minted access
// token nears its expiry, so a client that ignores the new token causes at
// most one rotation per access TTL. Errors are a *Refusal or wrap
// ErrUnavailable.
func (m *Manager) Inline(ctx context.Context, expiredRaw string, expired *token.Claims, refresh string) (*Grant, error) {
	id, ok := parse(refresh)
	if !ok {
		return nil, &Refusal{ReasonMalformed}
	}
	key := hash(expiredRaw)
	now := m.now()
	peek, err := m.Store.Peek(ctx, id, key, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if ref := refusalFor(peek); ref != nil {
		return nil, ref
	}
	f := peek.Family
	if f.Subject != expired.Subject {
		return nil, &Refusal{ReasonSubject}
	}
	last, haveBridge := openBridge(peek.Bridge, expiredRaw, id)
	if haveBridge && time.Unix(last.Expires, 0).Sub(now) > freshFor(f.AccessTTL) {
		// Still fresh: no rotation.
		return &Grant{FamilyID: id, Subject: f.Subject, AccessToken: last.Access, AccessExpires: time.Unix(last.Expires, 0),
			RefreshToken: last.Refresh, RefreshExpires: f.Deadline(), Outcome: store.Live}, nil
	}

	// Rotate: with the presented token when it is the one last given out
	// (or there is no bridge); otherwise probe both without revoking: first
	// the one tokengate gave this client last (a client that ignores cookies
	// still sends an older one), then the presented one (a tab may have
	// moved ahead of the bridge through the refresh route).
	type try struct {
		tok   string
		probe bool
	}
	tries := []try{{refresh, false}}
	if haveBridge && last.Refresh != refresh {
		tries = []try{{last.Refresh, true}, {refresh, true}}
	}
	fresh := func(b *bridge) bool { return time.Unix(b.Expires, 0).Sub(now) > freshFor(f.AccessTTL) }
	access, exp, err := m.Mint(f, now)
	if err != nil {
		return nil, err
	}
	for i, t := range tries {
		next, err := m.successor(t.tok)
		if err != nil {
			return nil, err
		}
		b, err := sealBridge(bridge{Access: access, Expires: exp.Unix(), Refresh: next}, expiredRaw, id)
		if err != nil {
			return nil, err
		}
		res, err := m.Store.Rotate(ctx, store.Rotation{
			ID: id, Presented: hash(t.tok), Next: hash(next), Now: now, Grace: m.policy().Grace,
			Probe: t.probe, BridgeKey: key, BridgeSealed: b,
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		switch res.Outcome {
		case store.Rotated:
			return &Grant{FamilyID: id, Subject: f.Subject, AccessToken: access, AccessExpires: exp,
				RefreshToken: next, RefreshExpires: res.Family.Deadline(), Outcome: store.Rotated}, nil
		case store.Grace:
			// Another request (here or on another replica) rotated first:
			// use what it gave, so every response carries one access token.
			if other, ok := openBridge(res.Bridge, expiredRaw, id); ok && fresh(other) {
				return &Grant{FamilyID: id, Subject: f.Subject, AccessToken: other.Access,
					AccessExpires: time.Unix(other.Expires, 0), RefreshToken: other.Refresh,
					RefreshExpires: res.Family.Deadline(), Outcome: store.Grace}, nil
			}
			if i+1 < len(tries) {
				// A token spent just now, by this client's own earlier
				// refresh; the next one may be current.
				continue
			}
			return &Grant{FamilyID: id, Subject: f.Subject, AccessToken: access, AccessExpires: exp,
				RefreshToken: next, RefreshExpires: res.Family.Deadline(), Outcome: store.Grace}, nil
		case store.Stale:
			continue
		}
		if ref := refusalFor(res); ref != nil {
			return nil, ref
		}
		return nil, errors.New("inline refresh: unexpected store answer " + res.Outcome.String())
	}
	return nil, &Refusal{ReasonStale}
}

// refusalFor maps a store outcome that ends the request to its refusal.
func refusalFor(res store.Result) *Refusal {
	switch res.Outcome {
	case store.Unknown:
		return &Refusal{ReasonUnknown}
	case store.Revoked:
		return &Refusal{ReasonRevoked}
	case store.Reused:
		return &Refusal{ReasonReused}
	case store.Expired:
		if res.EndReason == "idle" {
			return &Refusal{ReasonIdle}
		}
		return &Refusal{ReasonLifetime}
	}
	return nil
}
