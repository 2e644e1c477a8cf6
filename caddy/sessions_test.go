package caddy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

// sessionSite is tokengate with sessions in front of the stand-in API.
func sessionSite(t *testing.T, up *upstream, storeLine string, extra string) *site {
	t.Helper()
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	return loadSite(t, fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		public /health /auth/send-otp
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
			logout /auth/logout
			reuse_grace 300ms
			refresh_header X-Refresh-Token
			allowed_origins https://app.example
			%s
		}
		%s
	}
	reverse_proxy %s`, extra, storeLine, up.URL))
}

// loginSession logs in and returns the API's access token and the refresh
// cookie tokengate added.
func (s *site) loginSession(email string) (access, refresh string, res response) {
	s.t.Helper()
	res = s.do(http.MethodPost, "/auth/verify-otp", map[string]string{"email": email, "otp": leasing.DemoOTP})
	if res.status != http.StatusOK {
		s.t.Fatalf("login: %d %s", res.status, res.body)
	}
	access, _ = res.json(s.t)["access_token"].(string)
	refresh = cookieValue(res.header, "tg_refresh")
	if access == "" || refresh == "" {
		s.t.Fatalf("login answer lacks the access token or the refresh cookie: %s %v", res.body, res.header["Set-Cookie"])
	}
	return access, refresh, res
}

func cookieValue(h http.Header, name string) string {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func setCookie(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// refreshWith calls the refresh route with the token in a JSON body.
func (s *site) refreshWith(tok string) response {
	s.t.Helper()
	return s.do(http.MethodPost, "/auth/refresh", map[string]string{"refresh_token": tok})
}

func TestSession_LoginRefreshLogoutThroughTheAPI(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "")
	before := scrape(t)
	_, refresh, res := s.loginSession("frank@example.com")

	c := setCookie(res.header, "tg_refresh")
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge < 24*3600-5 || c.MaxAge > 24*3600 {
		t.Fatalf("refresh cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/, living as long as the idle timeout (24h)", c)
	}
	if body := res.json(t); len(body) != 1 {
		t.Fatalf("without body_fields the API's answer must be unchanged: %s", res.body)
	}

	// Refresh with the cookie, as a browser on the site would.
	r1 := s.do(http.MethodPost, "/auth/refresh", nil, "Cookie", "tg_refresh="+refresh)
	if r1.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r1.status, r1.body)
	}
	ans := r1.json(t)
	access, _ := ans["access_token"].(string)
	if ans["token_type"] != "Bearer" || ans["expires_in"].(float64) < 3500 || access == "" {
		t.Fatalf("refresh answer %s", r1.body)
	}
	if _, leaked := ans["refresh_token"]; leaked {
		t.Fatal("a cookie refresh put the refresh token in the body (readable by scripts)")
	}
	rotated := cookieValue(r1.header, "tg_refresh")
	if rotated == "" || rotated == refresh {
		t.Fatalf("refresh cookie not rotated: %v", r1.header["Set-Cookie"])
	}
	if r1.header.Get("Cache-Control") != "no-store" {
		t.Fatal("token answer is cacheable")
	}
	if _, hits := up.seen(); hits != 1 {
		t.Fatalf("the refresh route reached the API (%d API hits, only the login should)", hits)
	}

	// The minted token is accepted by the API's own guard.
	api := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access)
	if api.status != http.StatusOK || api.json(t)["user"] != leasing.UserFor("frank@example.com").ID {
		t.Fatalf("API with the minted token: %d %s", api.status, api.body)
	}

	out := s.do(http.MethodPost, "/auth/logout", nil, "Cookie", "tg_refresh="+rotated)
	if out.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", out.status, out.body)
	}
	if c := setCookie(out.header, "tg_refresh"); c == nil || c.MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %v", out.header["Set-Cookie"])
	}
	if again := s.do(http.MethodPost, "/auth/logout", nil, "Cookie", "tg_refresh="+rotated); again.status != http.StatusNoContent {
		t.Fatalf("second logout: %d", again.status)
	}
	after := s.refreshWith(rotated)
	if after.status != http.StatusUnauthorized || after.json(t)["error"] != "invalid_grant" {
		t.Fatalf("refresh after logout: %d %s", after.status, after.body)
	}

	m := scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"caddy_tokengate_sessions_started_total", nil, 1},
		{"caddy_tokengate_refreshes_total", []string{"mode", "endpoint", "result", "rotated"}, 1},
		{"caddy_tokengate_refreshes_total", []string{"mode", "endpoint", "result", "unknown"}, 1},
		{"caddy_tokengate_sessions_ended_total", []string{"reason", "logout"}, 1},
	} {
		if d := metricValue(m, c.name, c.labels...) - metricValue(before, c.name, c.labels...); d != c.delta {
			t.Errorf("%s%v grew by %v, want %v", c.name, c.labels, d, c.delta)
		}
	}
}

// TestSession_ReplayAfterGraceRevokesFamily is the Keycloak test: R1 -> R2,
// R1 replayed after the grace -> 401, and R2 is dead too.
func TestSession_ReplayAfterGraceRevokesFamily(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "body_fields")
	before := scrape(t)
	_, r1, _ := s.loginSession("grace@example.com")
	res := s.refreshWith(r1)
	if res.status != http.StatusOK {
		t.Fatalf("R1 -> R2: %d %s", res.status, res.body)
	}
	r2, _ := res.json(t)["refresh_token"].(string)
	// Inside the grace: the same R2 again, no fork.
	if again := s.refreshWith(r1); again.status != http.StatusOK || again.json(t)["refresh_token"] != r2 {
		t.Fatalf("R1 inside grace: %d %s", again.status, again.body)
	}
	time.Sleep(400 * time.Millisecond) // past the 300ms grace
	replay := s.refreshWith(r1)
	if replay.status != http.StatusUnauthorized || replay.json(t)["reason"] != "reused" {
		t.Fatalf("R1 after grace: %d %s", replay.status, replay.body)
	}
	dead := s.refreshWith(r2)
	if dead.status != http.StatusUnauthorized || dead.json(t)["reason"] != "revoked" {
		t.Fatalf("R2 after the replay: %d %s", dead.status, dead.body)
	}
	m := scrape(t)
	if d := metricValue(m, "caddy_tokengate_refresh_reuse_detected_total") - metricValue(before, "caddy_tokengate_refresh_reuse_detected_total"); d != 1 {
		t.Fatalf("reuse detected grew by %v, want 1", d)
	}
	if d := metricValue(m, "caddy_tokengate_sessions_ended_total", "reason", "reuse") - metricValue(before, "caddy_tokengate_sessions_ended_total", "reason", "reuse"); d != 1 {
		t.Fatalf("sessions ended by reuse grew by %v, want 1", d)
	}
}

func TestSession_BodyFieldsKeepTheAPIAnswer(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "body_fields")
	access, refresh, res := s.loginSession("body@example.com")
	want := fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"refresh_expires_in":`, access, refresh)
	if !strings.HasPrefix(string(res.body), want) || !strings.HasSuffix(string(res.body), "}\n") {
		t.Fatalf("login answer %s: want the API's bytes with the fields added before the brace", res.body)
	}
	if res.header.Get("Content-Length") != fmt.Sprint(len(res.body)) {
		t.Fatalf("Content-Length %s for %d bytes", res.header.Get("Content-Length"), len(res.body))
	}
	// Header-carried refresh for non-browser clients: the answer has the
	// successor in the body.
	r := s.do(http.MethodPost, "/auth/refresh", nil, "X-Refresh-Token", refresh)
	if r.status != http.StatusOK || r.json(t)["refresh_token"] == nil {
		t.Fatalf("header refresh: %d %s", r.status, r.body)
	}
}

func TestSession_RefreshRouteRejectsBadInput(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "")
	_, refresh, _ := s.loginSession("bad@example.com")
	for _, tc := range []struct {
		name    string
		method  string
		body    any
		headers []string
		status  int
		errCode string
	}{
		{"GET", http.MethodGet, nil, nil, 405, "invalid_request"},
		{"no credential", http.MethodPost, nil, nil, 400, "invalid_request"},
		{"body without field", http.MethodPost, map[string]string{"token": refresh}, nil, 400, "invalid_request"},
		{"field not a string", http.MethodPost, map[string]int{"refresh_token": 5}, nil, 400, "invalid_request"},
		{"garbage token", http.MethodPost, map[string]string{"refresh_token": "garbage"}, nil, 401, "invalid_grant"},
		{"forged token of a real family", http.MethodPost, map[string]string{"refresh_token": refresh[:23] + strings.Repeat("A", 43)}, nil, 401, "invalid_grant"},
		{"oversized body", http.MethodPost, map[string]string{"refresh_token": strings.Repeat("a", 9000)}, nil, 400, "invalid_request"},
		{"cookie from a foreign origin", http.MethodPost, nil, []string{"Cookie", "tg_refresh=" + refresh, "Origin", "https://evil.example"}, 403, "invalid_request"},
	} {
		res := s.do(tc.method, "/auth/refresh", tc.body, tc.headers...)
		if res.status != tc.status || res.json(t)["error"] != tc.errCode {
			t.Errorf("%s: %d %s, want %d %s", tc.name, res.status, res.body, tc.status, tc.errCode)
		}
	}
	// Not JSON at all.
	res := s.do(http.MethodPost, "/auth/refresh", nil, "Content-Type", "text/plain")
	if res.status != http.StatusBadRequest {
		t.Errorf("empty text body: %d", res.status)
	}
	// The forged token above revoked nothing it could not prove: a guessed
	// secret for a real family id is a replay, and the family is now dead.
	if r := s.refreshWith(refresh); r.status != http.StatusUnauthorized || r.json(t)["reason"] != "revoked" {
		t.Errorf("family after a forged token: %d %s", r.status, r.body)
	}
	// An allowed origin may use the cookie.
	_, fresh, _ := s.loginSession("bad2@example.com")
	if r := s.do(http.MethodPost, "/auth/refresh", nil, "Cookie", "tg_refresh="+fresh, "Origin", "https://app.example"); r.status != http.StatusOK {
		t.Errorf("allowed origin: %d %s", r.status, r.body)
	}
}

// TestSession_LoginAnswersPassThrough: failed logins, non-JSON answers and
// answers without a token reach the client untouched and open nothing.
func TestSession_LoginAnswersPassThrough(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "")
	before := metricValue(scrape(t), "caddy_tokengate_sessions_started_total")
	bad := s.do(http.MethodPost, "/auth/verify-otp", map[string]string{"email": "x@example.com", "otp": "000000"})
	if bad.status != http.StatusUnauthorized || setCookie(bad.header, "tg_refresh") != nil {
		t.Fatalf("failed login: %d %s %v", bad.status, bad.body, bad.header["Set-Cookie"])
	}
	var body map[string]any
	if json.Unmarshal(bad.body, &body) != nil || body["message"] != "Invalid OTP" {
		t.Fatalf("the API's error answer was changed: %s", bad.body)
	}
	if got := metricValue(scrape(t), "caddy_tokengate_sessions_started_total"); got != before {
		t.Fatalf("a failed login opened a session")
	}
}
