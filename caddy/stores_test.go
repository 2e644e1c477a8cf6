package caddy

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// TestFileStore_SessionsSurviveCaddyRestart: stop the Caddy process, start
// it again, and the refresh token issued before still works.
func TestFileStore_SessionsSurviveCaddyRestart(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	data := t.TempDir()
	p := startCaddy(t, data, fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		public /health
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
		}
		store file
	}
	reverse_proxy %s`, up.URL), "TG_IT_SECRET="+string(apiSecret))
	_, refresh, _ := p.site.loginSession("restart@example.com")

	p.restart()

	res := p.site.refreshWith(refresh)
	if res.status != http.StatusOK {
		t.Fatalf("refresh after restart: %d %s", res.status, res.body)
	}
	// The default file is in Caddy's data dir, which the test owns.
	if matches, _ := filepath.Glob(filepath.Join(data, "caddy", "tokengate", "sessions.db")); len(matches) != 1 {
		t.Fatalf("sessions.db not in Caddy's data dir %s", data)
	}
}

// TestRedisStore_OutageAnswers503AndRecovers: Redis killed while Caddy
// runs: refresh and login answer 503 with Retry-After, valid access tokens
// keep passing; Redis back: the same session refreshes again, no restart.
func TestRedisStore_OutageAnswers503AndRecovers(t *testing.T) {
	srv := storetest.StartDurableRedis(t)
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store redis "+srv.Addr, "body_fields")
	access, refresh, _ := s.loginSession("outage@example.com")
	before := scrape(t)

	srv.Stop()
	res := s.refreshWith(refresh)
	if res.status != http.StatusServiceUnavailable || res.header.Get("Retry-After") == "" || res.json(t)["error"] != "temporarily_unavailable" {
		t.Fatalf("refresh with Redis down: %d %v %s", res.status, res.header.Get("Retry-After"), res.body)
	}
	if api := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access); api.status != http.StatusOK {
		t.Fatalf("valid access token with Redis down: %d %s", api.status, api.body)
	}
	login := s.do(http.MethodPost, "/auth/verify-otp", map[string]string{"email": "outage@example.com", "otp": leasing.DemoOTP})
	if login.status != http.StatusServiceUnavailable || login.header.Get("Retry-After") == "" {
		t.Fatalf("login with Redis down: %d %s", login.status, login.body)
	}
	if d := metricValue(scrape(t), "caddy_tokengate_store_errors_total", "op", "rotate") - metricValue(before, "caddy_tokengate_store_errors_total", "op", "rotate"); d < 1 {
		t.Fatalf("store_errors_total{op=rotate} grew by %v", d)
	}

	srv.Start()
	res = s.refreshWith(refresh)
	if res.status != http.StatusOK {
		t.Fatalf("refresh after Redis came back: %d %s", res.status, res.body)
	}
	next, _ := res.json(t)["refresh_token"].(string)
	if again := s.refreshWith(next); again.status != http.StatusOK {
		t.Fatalf("the session forked or was lost: %d %s", again.status, again.body)
	}
}

// TestFileStore_ReloadSharesTheOpenFile: bbolt locks its file, so a reload
// that opened it a second time would hang and fail; the pool hands the new
// config the open store, and sessions carry over.
func TestFileStore_ReloadSharesTheOpenFile(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	path := filepath.Join(t.TempDir(), "sessions.db")
	s := sessionSite(t, up, "store file "+path, "")
	_, refresh, _ := s.loginSession("reload@example.com")
	s2 := sessionSite(t, up, "store file "+path, "body_fields")
	res := s2.refreshWith(refresh)
	if res.status != http.StatusOK || res.json(t)["refresh_token"] == nil {
		t.Fatalf("refresh after reload: %d %s", res.status, res.body)
	}
}
