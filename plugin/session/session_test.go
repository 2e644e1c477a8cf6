package session_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

var secret = []byte("session-test-4f1a9c3e7b5d2a8c6e0f1b3d5a7c9e2f")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type env struct {
	m     *session.Manager
	v     *token.Verifier
	clock *clock
	store *store.Memory
}

func newEnv(t *testing.T, cfg session.Config) *env {
	t.Helper()
	k, err := token.ParseKey("HS256", string(secret), "")
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := token.NewKeySet([]*token.Key{k})
	c := &clock{t: time.Now().Truncate(time.Second)}
	st := store.NewMemory(c.Now)
	return &env{
		m:     &session.Manager{Store: st, Keys: ks, Now: c.Now, Config: cfg},
		v:     &token.Verifier{Keys: ks, Leeway: token.DefaultLeeway, Now: c.Now, RejectTyp: []string{token.JobTokenTyp}},
		clock: c, store: st,
	}
}

// login verifies an API login token (1h, as the seed's API signs) and opens
// a session for it.
func (e *env) login(t *testing.T, sub string) *session.Grant {
	t.Helper()
	claims := tokentest.Claims(sub, e.clock.Now(), time.Hour)
	claims["role"] = "admin"
	c, err := e.v.Verify(context.Background(), tokentest.Build(tokentest.Header("HS256", ""), claims, tokentest.HS256(secret)))
	if err != nil {
		t.Fatal(err)
	}
	g, err := e.m.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func refusal(err error) string {
	var r *session.Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

func TestRefresh_RotatesAndMintsWhatTheAPIAccepts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	e.clock.Add(2 * time.Hour) // the API's token is long expired
	r, err := e.m.Refresh(context.Background(), g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if r.RefreshToken == g.RefreshToken || r.Outcome != store.Rotated {
		t.Fatalf("no rotation: %+v", r)
	}
	c, err := e.v.Verify(context.Background(), r.AccessToken)
	if err != nil {
		t.Fatalf("minted access token does not verify: %v", err)
	}
	if role, _ := c.Text("role"); c.Subject != "user-1" || role != "admin" {
		t.Fatalf("minted claims: sub %q role %q", c.Subject, role)
	}
	// Default access TTL: the API's own token lifetime.
	if got := r.AccessExpires.Sub(e.clock.Now()); got != time.Hour {
		t.Fatalf("access token lives %v, want the API's 1h", got)
	}
}

func TestRefresh_InsideGraceReturnsSameSuccessor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{Grace: 5 * time.Second})
	g := e.login(t, "user-1")
	first, err := e.m.Refresh(context.Background(), g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(5 * time.Second)
	again, err := e.m.Refresh(context.Background(), g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if again.RefreshToken != first.RefreshToken || again.Outcome != store.Grace {
		t.Fatalf("grace replay forked the family: %v vs %v (%v)", again.RefreshToken != first.RefreshToken, first.Outcome, again.Outcome)
	}
	if _, err := e.m.Refresh(context.Background(), first.RefreshToken); err != nil {
		t.Fatalf("the successor does not work after a grace replay: %v", err)
	}
}

func TestRefresh_ReplayedTokenRevokesFamily(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{Grace: 5 * time.Second})
	g := e.login(t, "user-1")
	r2, err := e.m.Refresh(context.Background(), g.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(6 * time.Second)
	if _, err := e.m.Refresh(context.Background(), g.RefreshToken); refusal(err) != session.ReasonReused {
		t.Fatalf("replay after grace: %v, want reused", err)
	}
	if _, err := e.m.Refresh(context.Background(), r2.RefreshToken); refusal(err) != session.ReasonRevoked {
		t.Fatalf("newest token after replay: %v, want revoked", err)
	}
}

func TestRefresh_FiftyConcurrentGetOneSuccessor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	const n = 50
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := e.m.Refresh(context.Background(), g.RefreshToken)
			errs[i] = err
			if r != nil {
				got[i] = r.RefreshToken
			}
		}(i)
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("request %d: %v, successor equal to the first: %v", i, errs[i], got[i] == got[0])
		}
	}
}

func TestRefresh_IdleAndLifetimeEndTheSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{Idle: time.Hour, Lifetime: 3 * time.Hour})
	g := e.login(t, "user-1")
	e.clock.Add(time.Hour)
	if _, err := e.m.Refresh(context.Background(), g.RefreshToken); refusal(err) != session.ReasonIdle {
		t.Fatalf("after idle: %v", err)
	}
	g = e.login(t, "user-2")
	end := e.clock.Now().Add(3 * time.Hour)
	tok := g.RefreshToken
	for range 5 {
		e.clock.Add(50 * time.Minute)
		r, err := e.m.Refresh(context.Background(), tok)
		if err != nil {
			if refusal(err) != session.ReasonLifetime || e.clock.Now().Before(end) {
				t.Fatalf("refresh at %v before the end ended with %v, want lifetime at the end", end.Sub(e.clock.Now()), err)
			}
			return
		}
		// The access token never outlives the session.
		if c, verr := e.v.Verify(context.Background(), r.AccessToken); verr != nil || c.ExpiresAt.After(r.RefreshExpires) {
			t.Fatalf("access token %v beyond session end %v (%v)", c.ExpiresAt, r.RefreshExpires, verr)
		}
		tok = r.RefreshToken
	}
	t.Fatal("session outlived its 3h lifetime")
}

func TestLogout_EndsOnlyWithItsOwnToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	forged := g.RefreshToken[:23] + strings.Repeat("A", 43)
	if ended, err := e.m.Logout(context.Background(), forged); ended || err != nil {
		t.Fatalf("a foreign token ended the session: %v %v", ended, err)
	}
	for _, bad := range []string{"", "x", g.RefreshToken + "x"} {
		if ended, err := e.m.Logout(context.Background(), bad); ended || err != nil {
			t.Fatalf("logout(%q) = %v %v", bad, ended, err)
		}
	}
	if ended, err := e.m.Logout(context.Background(), g.RefreshToken); !ended || err != nil {
		t.Fatalf("logout: %v %v", ended, err)
	}
	if _, err := e.m.Refresh(context.Background(), g.RefreshToken); refusal(err) != session.ReasonUnknown {
		t.Fatalf("refresh after logout: %v, want unknown", err)
	}
}

func TestRefresh_MalformedTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	for _, bad := range []string{"", "abc", g.RefreshToken[:65], g.RefreshToken + "=", strings.Replace(g.RefreshToken, ".", "-", 1),
		"!!!!!!!!!!!!!!!!!!!!!!." + g.RefreshToken[23:]} {
		if _, err := e.m.Refresh(context.Background(), bad); refusal(err) != session.ReasonMalformed {
			t.Errorf("refresh(%q): %v, want malformed", bad, err)
		}
	}
}

func TestStore_KeepsOnlyHashes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	r, _ := e.m.Refresh(context.Background(), g.RefreshToken)
	f, err := e.store.Get(context.Background(), g.FamilyID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(f)
	for _, tok := range []string{g.RefreshToken, r.RefreshToken} {
		secretPart := tok[23:]
		raw, _ := base64.RawURLEncoding.DecodeString(secretPart)
		if strings.Contains(string(b), secretPart) || strings.Contains(string(b), string(raw)) {
			t.Fatal("the store holds a refresh token in clear")
		}
	}
}

func TestRefresh_StoreDownIsUnavailableNotRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	g := e.login(t, "user-1")
	// A Redis client pointed at a port nobody listens on.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })
	e.m.Store = store.NewRedis(dead, "tg:", false)
	_, err := e.m.Refresh(context.Background(), g.RefreshToken)
	if !errors.Is(err, session.ErrUnavailable) || refusal(err) != "" {
		t.Fatalf("refresh with the store down: %v, want ErrUnavailable", err)
	}
	if _, err := e.m.Logout(context.Background(), g.RefreshToken); !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("logout with the store down: %v, want ErrUnavailable", err)
	}
}

func BenchmarkRefresh_Memory(b *testing.B) {
	k, _ := token.ParseKey("HS256", string(secret), "")
	ks, _ := token.NewKeySet([]*token.Key{k})
	m := &session.Manager{Store: store.NewMemory(nil), Keys: ks}
	v := &token.Verifier{Keys: ks}
	c, _ := v.Verify(context.Background(), tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims("u", time.Now(), time.Hour), tokentest.HS256(secret)))
	g, _ := m.Open(context.Background(), c)
	tok := g.RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		r, err := m.Refresh(context.Background(), tok)
		if err != nil {
			b.Fatal(err)
		}
		tok = r.RefreshToken
	}
}
