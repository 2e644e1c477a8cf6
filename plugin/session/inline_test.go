package session_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

// expiredLogin logs in with a token of the given lifetime, lets it expire,
// and returns the raw token, its claims (from the verifier) and the grant.
func (e *env) expiredLogin(t *testing.T, sub string, ttl time.Duration) (string, *token.Claims, *session.Grant) {
	t.Helper()
	raw := tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims(sub, e.clock.Now(), ttl), tokentest.HS256(secret))
	c, err := e.v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.m.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(ttl + time.Minute)
	c, err = e.v.Verify(context.Background(), raw)
	if c == nil || err == nil {
		t.Fatalf("token did not expire: %v", err)
	}
	return raw, c, g
}

func (e *env) generation(t *testing.T, id string) int64 {
	t.Helper()
	f, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return f.Generation
}

func TestInline_RotatesOnceThenServesTheSameToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	raw, claims, g := e.expiredLogin(t, "user-1", time.Hour)
	first, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken)
	if err != nil || first.Outcome != store.Rotated {
		t.Fatalf("first inline: %+v %v", first, err)
	}
	if c, err := e.v.Verify(context.Background(), first.AccessToken); err != nil || c.Subject != "user-1" {
		t.Fatalf("inline access token: %v", err)
	}
	e.clock.Add(time.Minute) // past the grace: a rotation now would be a replay
	again, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken)
	if err != nil || again.Outcome != store.Live || again.AccessToken != first.AccessToken {
		t.Fatalf("same expired token again: %+v %v", again, err)
	}
	if gen := e.generation(t, g.FamilyID); gen != 1 {
		t.Fatalf("%d rotations, want 1", gen)
	}
}

func TestInline_ConcurrentRequestsShareOneRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	raw, claims, g := e.expiredLogin(t, "user-1", time.Hour)
	const n = 50
	got := make([]*session.Grant, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			got[i], errs[i] = e.m.Inline(context.Background(), raw, claims, g.RefreshToken)
		}(i)
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i].AccessToken != got[0].AccessToken || got[i].RefreshToken != got[0].RefreshToken {
			t.Fatalf("request %d: %v; same tokens as request 0: %v", i, errs[i], errs[i] == nil && got[i].AccessToken == got[0].AccessToken)
		}
	}
	if gen := e.generation(t, g.FamilyID); gen != 1 {
		t.Fatalf("%d rotations, want 1", gen)
	}
}

// TestInline_ClientThatIgnoresEverything sends the same expired token and
// the same first refresh token for three access-token lifetimes.
func TestInline_ClientThatIgnoresEverything(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{AccessTTL: 10 * time.Minute})
	raw, claims, g := e.expiredLogin(t, "user-1", time.Hour)
	for i := range 50 {
		if _, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		e.clock.Add(36 * time.Second) // 50 requests over 30 minutes
	}
	if gen := e.generation(t, g.FamilyID); gen < 1 || gen > 3 {
		t.Fatalf("%d rotations over 3 access-token lifetimes, want at most 3", gen)
	}
}

func TestInline_TabAheadOfTheBridgeKeepsWorking(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{AccessTTL: 10 * time.Minute})
	raw, claims, g := e.expiredLogin(t, "user-1", time.Hour)
	first, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// Another tab uses the refresh route with the rotated cookie.
	e.clock.Add(time.Minute)
	other, err := e.m.Refresh(context.Background(), first.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	// The bridge's access token runs out; this tab sends the newest cookie.
	e.clock.Add(10 * time.Minute)
	res, err := e.m.Inline(context.Background(), raw, claims, other.RefreshToken)
	if err != nil || res.Outcome != store.Rotated {
		t.Fatalf("inline with a cookie ahead of the bridge: %+v %v", res, err)
	}
	// And a client still sending the very first cookie is served from the
	// bridge, without revoking anything.
	if _, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken); err != nil {
		t.Fatalf("first cookie after the tab moved ahead: %v", err)
	}
	if f, _ := e.store.Get(context.Background(), g.FamilyID); f.Revoked {
		t.Fatal("family revoked")
	}
}

func TestInline_Refusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{Idle: time.Hour, Lifetime: 3 * time.Hour})
	raw, claims, g := e.expiredLogin(t, "user-1", 10*time.Minute)
	rawB, claimsB, _ := e.expiredLogin(t, "user-2", 10*time.Minute)

	if _, err := e.m.Inline(context.Background(), rawB, claimsB, g.RefreshToken); refusal(err) != session.ReasonSubject {
		t.Fatalf("another user's expired token with this session: %v", err)
	}
	if _, err := e.m.Inline(context.Background(), raw, claims, "not-a-refresh-token"); refusal(err) != session.ReasonMalformed {
		t.Fatalf("malformed refresh token: %v", err)
	}
	e.clock.Add(time.Hour) // past idle
	if _, err := e.m.Inline(context.Background(), raw, claims, g.RefreshToken); refusal(err) != session.ReasonIdle {
		t.Fatalf("idle session: %v", err)
	}

	raw2, claims2, g2 := e.expiredLogin(t, "user-3", 10*time.Minute)
	r, _ := e.m.Refresh(context.Background(), g2.RefreshToken)
	e.clock.Add(time.Minute)
	_, _ = e.m.Refresh(context.Background(), g2.RefreshToken) // replay: revokes
	if _, err := e.m.Inline(context.Background(), raw2, claims2, r.RefreshToken); refusal(err) != session.ReasonRevoked {
		t.Fatalf("revoked family: %v", err)
	}
}
