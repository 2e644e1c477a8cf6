package caddy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// The stand-in API signs 1-second tokens here, and tokengate mints access
// tokens of accessTTL; there is no leeway, so tokens expire when they say.
const loginTTL = time.Second

func inlineBody(up *upstream, storeLine, accessTTL string) string {
	return fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		leeway 0s
		public /health
		forward_claim sub X-User-Id
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
			logout /auth/logout
			access_ttl %s
			refresh_header X-Refresh-Token
		}
		%s
	}
	reverse_proxy %s`, accessTTL, storeLine, up.URL)
}

func inlineSite(t *testing.T, up *upstream, storeLine, accessTTL string) *site {
	t.Helper()
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	return loadSite(t, inlineBody(up, storeLine, accessTTL))
}

// expiredSession logs in and waits until the API's token has expired.
func expiredSession(t *testing.T, s *site, email string) (access, refresh string) {
	t.Helper()
	access, refresh, _ = s.loginSession(email)
	time.Sleep(loginTTL + 100*time.Millisecond)
	if res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access); res.status != http.StatusUnauthorized || res.json(t)["reason"] != "expired" {
		t.Fatalf("the login token did not expire: %d %s", res.status, res.body)
	}
	return access, refresh
}

func TestInline_ExpiredTokenWithCookieIsRefreshedInFlight(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	s := inlineSite(t, up, "store memory", "1m")
	old, refresh := expiredSession(t, s, "inline@example.com")
	before := scrape(t)

	get := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old,
		"Cookie", "tg_refresh="+refresh, "Origin", "https://app.example")
	if get.status != http.StatusOK {
		t.Fatalf("GET with an expired token and the cookie: %d %s", get.status, get.body)
	}
	fresh := get.header.Get("X-Access-Token")
	h, _ := up.seen()
	if fresh == "" || h.Get("Authorization") != "Bearer "+fresh {
		t.Fatalf("the API got %q, the client got X-Access-Token %q", h.Get("Authorization"), fresh)
	}
	if h.Get("X-User-Id") != leasing.UserFor("inline@example.com").ID {
		t.Fatalf("identity header %q", h.Get("X-User-Id"))
	}
	if n, _ := strconv.Atoi(get.header.Get("X-Access-Token-Expires-In")); n < 55 || n > 60 {
		t.Fatalf("X-Access-Token-Expires-In = %q", get.header.Get("X-Access-Token-Expires-In"))
	}
	if !strings.Contains(get.header.Get("Access-Control-Expose-Headers"), "X-Access-Token") {
		t.Fatalf("Access-Control-Expose-Headers = %q", get.header.Get("Access-Control-Expose-Headers"))
	}
	rotated := cookieValue(get.header, "tg_refresh")
	if rotated == "" || rotated == refresh {
		t.Fatalf("the cookie was not rotated: %v", get.header["Set-Cookie"])
	}

	// A POST with a body, still with the old token and the old cookie: the
	// body reaches the API once and intact, with the same new token.
	body := map[string]string{"scope": "all-properties"}
	post := s.do(http.MethodPost, "/leasing/renewals/sync", body, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
	if post.status != http.StatusAccepted || post.json(t)["jobId"] == nil {
		t.Fatalf("POST with an expired token: %d %s", post.status, post.body)
	}
	if string(up.body()) != `{"scope":"all-properties"}` {
		t.Fatalf("the API got body %q", up.body())
	}
	if post.header.Get("X-Access-Token") != fresh {
		t.Fatal("a second request with the same expired token got another access token")
	}

	m := scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"caddy_tokengate_refreshes_total", []string{"mode", "inline", "result", "rotated"}, 1},
		{"caddy_tokengate_refreshes_total", []string{"mode", "inline", "result", "bridged"}, 1},
		{"caddy_tokengate_logouts_prevented_total", nil, 2},
		{"caddy_tokengate_decisions_total", []string{"decision", "refreshed"}, 2},
	} {
		if d := metricValue(m, c.name, c.labels...) - metricValue(before, c.name, c.labels...); d != c.delta {
			t.Errorf("%s%v grew by %v, want %v", c.name, c.labels, d, c.delta)
		}
	}
}

// generation reads a family's rotation count straight from Redis.
func generation(t *testing.T, c *redis.Client, refresh string) int {
	t.Helper()
	id := refresh[:strings.IndexByte(refresh, '.')]
	v, err := c.HGet(context.Background(), "tokengate:fam:{"+id+"}", "g").Int()
	if err != nil {
		t.Fatalf("reading the family from Redis: %v", err)
	}
	return v
}

func TestInline_HundredConcurrentRequestsOneRotation(t *testing.T) {
	srv := storetest.StartRedis(t)
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	s := inlineSite(t, up, "store redis "+srv.Addr, "1m")
	old, refresh := expiredSession(t, s, "hundred@example.com")

	const n = 100
	statuses := make([]int, n)
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
			statuses[i], tokens[i] = res.status, res.header.Get("X-Access-Token")
		}(i)
	}
	wg.Wait()
	distinct := map[string]bool{}
	for i := range n {
		if statuses[i] != http.StatusOK {
			t.Fatalf("request %d: %d", i, statuses[i])
		}
		distinct[tokens[i]] = true
	}
	if len(distinct) != 1 {
		t.Fatalf("%d different access tokens in 100 answers, want 1", len(distinct))
	}
	if g := generation(t, srv.Client(), refresh); g != 1 {
		t.Fatalf("%d rotations in the store, want 1", g)
	}
}

// TestInline_ClientThatNeverReadsTheNewToken: 50 requests over 3 access-token
// lifetimes with the first expired token and the first cookie.
func TestInline_ClientThatNeverReadsTheNewToken(t *testing.T) {
	srv := storetest.StartRedis(t)
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	s := inlineSite(t, up, "store redis "+srv.Addr, "2s")
	old, refresh := expiredSession(t, s, "stubborn@example.com")
	for i := range 50 {
		res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
		if res.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
		// 50 x (110ms + the request) is about 3 x 2s; with exp rounded up
		// each minted token lives 2-3s, so 4 rotations would mean a token
		// replaced early.
		time.Sleep(110 * time.Millisecond)
	}
	if g := generation(t, srv.Client(), refresh); g < 1 || g > 3 {
		t.Fatalf("%d rotations over 3 access-token lifetimes, want at most 3", g)
	}
}

// TestInline_TwoReplicasOnOneRedis: two Caddy processes, requests alternating
// between them with the same expired token and cookie.
func TestInline_TwoReplicasOnOneRedis(t *testing.T) {
	srv := storetest.StartRedis(t)
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	env := "TG_IT_SECRET=" + string(apiSecret)
	a := startCaddy(t, t.TempDir(), inlineBody(up, "store redis "+srv.Addr, "1m"), env)
	b := startCaddy(t, t.TempDir(), inlineBody(up, "store redis "+srv.Addr, "1m"), env)
	old, refresh := expiredSession(t, a.site, "replicas@example.com")
	tokens := map[string]bool{}
	for i := range 20 {
		s := a.site
		if i%2 == 1 {
			s = b.site
		}
		res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
		if res.status != http.StatusOK {
			t.Fatalf("request %d on replica %c: %d %s", i, "ab"[i%2], res.status, res.body)
		}
		tokens[res.header.Get("X-Access-Token")] = true
	}
	c := srv.Client()
	if g := generation(t, c, refresh); g != 1 {
		t.Fatalf("%d rotations, want 1", g)
	}
	id := refresh[:strings.IndexByte(refresh, '.')]
	if revoked := c.HGet(context.Background(), "tokengate:fam:{"+id+"}", "r").Val(); revoked != "" {
		t.Fatal("reuse detection fired across replicas")
	}
	if len(tokens) != 1 {
		t.Fatalf("%d access tokens across replicas, want 1", len(tokens))
	}
	if keys := c.Keys(context.Background(), "tokengate:fam:*}").Val(); len(keys) != 1 {
		t.Fatalf("%d families in Redis, want 1: %v", len(keys), keys)
	}
}

func TestInline_RefusalsAnswer401WithReason(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	s := inlineSite(t, up, "store memory", "1m")
	aliceOld, aliceRefresh, _ := s.loginSession("alice.inline@example.com")
	bobOld, bobRefresh, _ := s.loginSession("bob.inline@example.com")
	time.Sleep(loginTTL + 100*time.Millisecond)

	// Bob's expired token with Alice's session.
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+bobOld, "Cookie", "tg_refresh="+aliceRefresh)
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "subject_mismatch" {
		t.Fatalf("subject mismatch: %d %s", res.status, res.body)
	}
	// Bob logged out: his session is over.
	if out := s.do(http.MethodPost, "/auth/logout", map[string]string{"refresh_token": bobRefresh}); out.status != http.StatusNoContent {
		t.Fatalf("logout: %d", out.status)
	}
	res = s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+bobOld, "X-Refresh-Token", bobRefresh)
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "session_ended" {
		t.Fatalf("logged-out session: %d %s", res.status, res.body)
	}
	// A garbage refresh cookie is a refusal, and the cookie is cleared.
	res = s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+aliceOld, "Cookie", "tg_refresh=garbage")
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "session_ended" {
		t.Fatalf("garbage refresh cookie: %d %s", res.status, res.body)
	}
	if c := setCookie(res.header, "tg_refresh"); c == nil || c.MaxAge >= 0 {
		t.Fatal("a refused cookie was not cleared")
	}
	// None of this hurt Alice's session.
	if ok := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+aliceOld, "Cookie", "tg_refresh="+aliceRefresh); ok.status != http.StatusOK {
		t.Fatalf("alice after the refusals: %d %s", ok.status, ok.body)
	}
}

func TestInline_RevokedFamilyIsRefused(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	s := loadSite(t, strings.Replace(inlineBody(up, "store memory", "1m"), "refresh_header X-Refresh-Token", "refresh_header X-Refresh-Token\n\t\t\treuse_grace 200ms", 1))
	old, r1, _ := s.loginSession("revoked.inline@example.com")
	res := s.refreshWith(r1)
	r2, _ := res.json(t)["refresh_token"].(string) // a body refresh answers with the successor
	if r2 == "" {
		t.Fatalf("refresh: %s", res.body)
	}
	time.Sleep(loginTTL + 100*time.Millisecond)
	if replay := s.refreshWith(r1); replay.json(t)["reason"] != "reused" {
		t.Fatalf("replay: %s", replay.body)
	}
	res = s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "X-Refresh-Token", r2)
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "revoked" {
		t.Fatalf("revoked family inline: %d %s", res.status, res.body)
	}
}

// TestForward_UpstreamUnauthorizedIsCountedAndPassedOn: a token tokengate
// accepts but the API refuses (here: no sub claim).
func TestForward_UpstreamUnauthorizedIsCountedAndPassedOn(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	before := metricValue(scrape(t), "caddy_tokengate_upstream_unauthorized_total")
	noSub := signHS(t, map[string]any{"exp": time.Now().Add(time.Hour).Unix(), "email": "x@example.com"})
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+noSub)
	if res.status != http.StatusUnauthorized || res.json(t)["message"] != "Unauthorized" {
		t.Fatalf("want the API's own 401 passed through: %d %s", res.status, res.body)
	}
	if d := metricValue(scrape(t), "caddy_tokengate_upstream_unauthorized_total") - before; d != 1 {
		t.Fatalf("upstream_unauthorized_total grew by %v, want 1", d)
	}
}

// TestInline_ExpiredSessionIsRefused: the session's idle timeout passed
// before the client came back.
func TestInline_ExpiredSessionIsRefused(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	s := loadSite(t, strings.Replace(inlineBody(up, "store memory", "1m"), "refresh_header X-Refresh-Token",
		"refresh_header X-Refresh-Token\n\t\t\tidle 1200ms\n\t\t\tlifetime 1h", 1))
	before := scrape(t)
	old, refresh, _ := s.loginSession("idle.inline@example.com")
	time.Sleep(1300 * time.Millisecond)
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "session_ended" {
		t.Fatalf("idle session: %d %s", res.status, res.body)
	}
	m := scrape(t)
	if d := metricValue(m, "caddy_tokengate_refreshes_total", "mode", "inline", "result", "idle") -
		metricValue(before, "caddy_tokengate_refreshes_total", "mode", "inline", "result", "idle"); d != 1 {
		t.Fatalf("refreshes_total{inline,idle} grew by %v", d)
	}
	if d := metricValue(m, "caddy_tokengate_sessions_ended_total", "reason", "idle") -
		metricValue(before, "caddy_tokengate_sessions_ended_total", "reason", "idle"); d != 1 {
		t.Fatalf("sessions_ended_total{idle} grew by %v", d)
	}
}

// TestInline_TokenInsideTheLeewayIsRefreshedNotForwarded: with the default
// 30s leeway a token just past its exp still verifies, but the API checks
// exp itself; with a refresh credential tokengate refreshes it instead of
// forwarding a token the API would refuse.
func TestInline_TokenInsideTheLeewayIsRefreshedNotForwarded(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	s := loadSite(t, strings.Replace(inlineBody(up, "store memory", "1m"), "leeway 0s", "", 1))
	old, refresh, _ := s.loginSession("leeway@example.com")
	time.Sleep(loginTTL + 100*time.Millisecond)
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusOK || res.header.Get("X-Access-Token") == "" {
		t.Fatalf("token inside the leeway with a cookie: %d %s", res.status, res.body)
	}
}
