package caddy

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

// apiSite puts tokengate in front of the stand-in API, as the root
// Caddyfile does.
func apiSite(t *testing.T, up *upstream) *site {
	t.Helper()
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	return loadSite(t, fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		public /health /auth/send-otp /auth/verify-otp
		forward_claim sub X-User-Id
		forward_claim email X-User-Email
		token_source header Authorization
		token_source cookie access_token
	}
	reverse_proxy %s {
		header_up X-Auth-Id {http.auth.user.id}
		header_up X-Auth-Role {http.auth.user.role}
	}`, up.URL))
}

func TestGate_ValidTokenReachesAPIWithIdentityHeaders(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	tok := s.login("alice@example.com")
	user := leasing.UserFor("alice@example.com")

	res := s.do(http.MethodGet, "/leasing/renewals", nil,
		"Authorization", "Bearer "+tok,
		"X-User-Id", "spoofed-admin", "x-user-email", "root@example.com")
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if got := res.json(t)["user"]; got != user.ID {
		t.Fatalf("the API's own guard saw user %v, want %s", got, user.ID)
	}
	h, _ := up.seen()
	for name, want := range map[string]string{
		"X-User-Id": user.ID, "X-User-Email": user.Email,
		"X-Auth-Id": user.ID, "X-Auth-Role": user.Role,
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("upstream header %s = %q, want exactly %q", name, got, want)
		}
	}
}

func TestGate_TokenFromCookie(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	tok := s.login("carol@example.com")
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Cookie", "access_token="+tok)
	// The API itself wants a Bearer header, which a cookie-only client
	// lacks: tokengate let it through, and the API's answer is the API's.
	if res.status == http.StatusUnauthorized && strings.Contains(string(res.body), "invalid_token") {
		t.Fatalf("tokengate refused a valid cookie token: %s", res.body)
	}
	h, hits := up.seen()
	if hits == 0 || h.Get("X-User-Id") != leasing.UserFor("carol@example.com").ID {
		t.Fatalf("upstream did not get the identity: hits=%d X-User-Id=%q", hits, h.Get("X-User-Id"))
	}
}

func TestGate_PublicRoutePassesWithoutTokenAndStripsSpoofedIdentity(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	res := s.do(http.MethodGet, "/health", nil, "X-User-Id", "spoofed-admin")
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	h, _ := up.seen()
	if v := h.Values("X-User-Id"); len(v) != 0 {
		t.Fatalf("spoofed identity reached the API on a public route: %q", v)
	}
	if res := s.do(http.MethodGet, "/leasing/renewals", nil); res.status != http.StatusUnauthorized {
		t.Fatalf("protected route without token: %d", res.status)
	}
}

func TestGate_MissingTokenChallengeHasNoErrorCode(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	res := s.do(http.MethodGet, "/leasing/renewals", nil)
	if res.status != http.StatusUnauthorized {
		t.Fatalf("status %d", res.status)
	}
	if got := res.header.Get("WWW-Authenticate"); got != `Bearer realm="tokengate"` {
		t.Fatalf("WWW-Authenticate = %q (RFC 6750 s3.1: no error code without credentials)", got)
	}
	body := res.json(t)
	if body["error"] != "invalid_token" || body["reason"] != "missing" || body["message"] == "" {
		t.Fatalf("body = %v", body)
	}
	if _, hits := up.seen(); hits != 0 {
		t.Fatalf("a refused request reached the API (%d hits)", hits)
	}
}

func TestGate_ExpiredAPITokenIsRefusedAndAged(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	past := leasing.New(leasing.Config{Secret: apiSecret, AccessTTL: time.Hour,
		Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
	tok, err := past.Sign(leasing.UserFor("bob@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t)
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+tok)
	if res.status != http.StatusUnauthorized || res.json(t)["reason"] != "expired" {
		t.Fatalf("status %d body %s", res.status, res.body)
	}
	if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, `error="invalid_token"`) || !strings.Contains(got, "expired") {
		t.Fatalf("WWW-Authenticate = %q", got)
	}
	after := scrape(t)
	name := "caddy_tokengate_expired_token_age_seconds"
	if d := metricValue(after, name) - metricValue(before, name); d != 1 {
		t.Fatalf("%s count grew by %v, want 1", name, d)
	}
}

// forgerySite verifies with HS256 (no kid), RS256 (kid rs1) and ES256
// (kid es1) keys, an issuer and an audience, and answers 200 when a token
// passes, so each case's verdict is tokengate's alone.
func forgerySite(t *testing.T, f tokentest.Fixture) *site {
	t.Helper()
	dir := t.TempDir()
	rsPath := filepath.Join(dir, "rs.pem")
	esPath := filepath.Join(dir, "es.pem")
	if err := os.WriteFile(rsPath, f.Keys.RSAPub, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(esPath, f.Keys.ECPub, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TG_IT_SECRET", string(f.Secret))
	return loadSite(t, fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		key RS256 %s kid rs1
		key ES256 %s kid es1
		issuer %s
		audience %s
	}
	respond "passed" 200`, rsPath, esPath, f.Issuer, f.Audience))
}

func TestGate_ForgedAndInvalidTokensAreRefusedWithReason(t *testing.T) {
	f := tokentest.Fixture{Secret: apiSecret, Keys: tokentest.NewKeys(t),
		Issuer: "https://api.example", Audience: "leasing", Now: time.Now()}
	s := forgerySite(t, f)
	before := scrape(t)
	want := map[token.Reason]float64{}
	for _, c := range f.Cases() {
		if c.Reason != "" {
			want[c.Reason]++
		}
		// One named subtest per token of the fixture, each through Caddy.
		t.Run(c.Name, func(t *testing.T) {
			st := *s
			st.t = t
			res := st.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+c.Token)
			if c.Reason == "" {
				if res.status != http.StatusOK {
					t.Errorf("valid token got %d %s", res.status, res.body)
				}
				return
			}
			if res.status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", res.status)
			}
			if got := res.json(t)["reason"]; got != string(c.Reason) {
				t.Errorf("reason %v, want %s", got, c.Reason)
			}
			if ch := res.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, `Bearer realm="tokengate", error="invalid_token", error_description="`) {
				t.Errorf("WWW-Authenticate = %q", ch)
			}
		})
	}
	// Headers that are wrong before any token is read.
	for _, h := range []struct {
		name   string
		value  []string
		reason token.Reason
	}{
		{"basic scheme", []string{"Basic YWxpY2U6c2VjcmV0"}, token.ReasonMalformed},
		{"two authorization headers", []string{"Bearer a.b.c", "Bearer d.e.f"}, token.ReasonMalformed},
		{"authorization header over 8 KiB", []string{"Bearer " + strings.Repeat("x", 9000)}, token.ReasonOversized},
		{"bearer with nothing", []string{"Bearer "}, token.ReasonMissing},
	} {
		var hdrs []string
		for _, v := range h.value {
			hdrs = append(hdrs, "Authorization", v)
		}
		res := s.do(http.MethodGet, "/x", nil, hdrs...)
		want[h.reason]++
		if res.status != http.StatusUnauthorized || res.json(t)["reason"] != string(h.reason) {
			t.Errorf("%s: status %d body %s, want 401 %s", h.name, res.status, res.body, h.reason)
		}
	}

	after := scrape(t)
	for _, r := range token.Reasons {
		name := "caddy_tokengate_rejections_total"
		got := metricValue(after, name, "reason", string(r)) - metricValue(before, name, "reason", string(r))
		if got != want[r] {
			t.Errorf("%s{reason=%q} grew by %v, want %v", name, r, got, want[r])
		}
	}
}

// signHS signs claims with the API's secret.
func signHS(t *testing.T, claims map[string]any) string {
	t.Helper()
	return tokentest.Build(tokentest.Header("HS256", ""), claims, tokentest.HS256(apiSecret))
}
