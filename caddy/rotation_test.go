package caddy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

// TestKeyRotation_NoOneIsLoggedOut replaces the API's secret: the API
// restarts with the new one while tokengate reloads with the new key first
// and the old one retired. Access tokens, refresh cookies and job tokens
// issued before keep working.
func TestKeyRotation_NoOneIsLoggedOut(t *testing.T) {
	oldSecret, newSecret := string(apiSecret), "rotated-7e1f0c9b3a5d2e8f4a6c0b1d3e5f7a9c2b4d6e8f"
	oldAPI := newUpstream(t, leasing.Config{Secret: []byte(oldSecret), JobDuration: time.Hour})
	newAPI := newUpstream(t, leasing.Config{Secret: []byte(newSecret), JobDuration: time.Hour})
	t.Setenv("TG_OLD", oldSecret)
	t.Setenv("TG_NEW", newSecret)
	body := func(keys, upstream string) string {
		return fmt.Sprintf(`
	tokengate {
		%s
		public /health /auth/send-otp
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
		}
		job POST /leasing/renewals/sync {
			status GET /leasing/renewals/sync/{id}
		}
		store memory
	}
	reverse_proxy %s`, keys, upstream)
	}
	s := loadSite(t, body("key HS256 {env.TG_OLD}", oldAPI.URL))
	access, refresh, _ := s.loginSession("rotation@example.com")
	jobID, jobToken := startSync(t, s, access)

	// The rotation: the API on the new secret, tokengate with both keys.
	s = loadSite(t, body("key HS256 {env.TG_NEW}\n\t\tkey HS256 {env.TG_OLD} retired", newAPI.URL))
	// The job lives in the old API process in this test; the new one is
	// asked for the renewals list and refreshes.
	if res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access); res.status != http.StatusOK {
		t.Fatalf("an access token from before the rotation: %d %s", res.status, res.body)
	}
	h, _ := newAPI.seen()
	if h.Get("Authorization") == "Bearer "+access {
		t.Fatal("the old-key token was forwarded as it was")
	}
	res := s.do(http.MethodPost, "/auth/refresh", nil, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusOK {
		t.Fatalf("a refresh cookie from before the rotation: %d %s", res.status, res.body)
	}
	fresh, _ := res.json(t)["access_token"].(string)
	if api := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+fresh); api.status != http.StatusOK {
		t.Fatalf("the refreshed token on the new API: %d %s", api.status, api.body)
	}
	// A job token from before: accepted, and the API gets a new-key token
	// (the new API does not know the job, so it answers 404 itself).
	poll := s.do(http.MethodGet, "/leasing/renewals/sync/"+jobID, nil, "X-Job-Token", jobToken)
	if poll.status != http.StatusNotFound || poll.json(t)["message"] != "job not found" {
		t.Fatalf("a job token from before the rotation: %d %s", poll.status, poll.body)
	}
	// And a token signed with the retired key is never minted again.
	if fresh == access || len(fresh) == 0 {
		t.Fatal("no new token")
	}
}
