package caddy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// The seed's scenario, shortened: the API's tokens last 2 seconds and a
// renewals sync 8 seconds.
const (
	seedAccessTTL   = 2 * time.Second
	seedJobDuration = 8 * time.Second
)

func jobsBody(up *upstream, storeLine string) string {
	return fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		leeway 0s
		public /health /auth/send-otp /auth/verify-otp
		job POST /leasing/renewals/sync {
			status GET /leasing/renewals/sync/{id}
			allow_expired_owner
			body_field jobToken
			done_field status
			done_values completed failed
			done_after 1m
		}
		%s
	}
	reverse_proxy %s`, storeLine, up.URL)
}

func jobsSite(t *testing.T, up *upstream, storeLine string) *site {
	t.Helper()
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	return loadSite(t, jobsBody(up, storeLine))
}

// startSync starts a renewals sync and returns the job id and job token;
// a jobToken field in the answer (body_field) must hold the same token.
func startSync(t *testing.T, s *site, access string) (jobID, jobToken string) {
	t.Helper()
	res := s.do(http.MethodPost, "/leasing/renewals/sync", nil, "Authorization", "Bearer "+access)
	if res.status != http.StatusAccepted {
		t.Fatalf("start sync: %d %s", res.status, res.body)
	}
	body := res.json(t)
	jobID, _ = body["jobId"].(string)
	jobToken = res.header.Get("X-Job-Token")
	if inBody, ok := body["jobToken"]; ok && inBody != jobToken {
		t.Fatalf("jobToken field %v differs from X-Job-Token", inBody)
	}
	if jobID == "" || jobToken == "" || body["message"] != "Job started" {
		t.Fatalf("start answer %s, X-Job-Token %q", res.body, jobToken)
	}
	return jobID, jobToken
}

// TestSeedScenario_JobStatusSurvivesTokenExpiry is the seed's "Testing the
// Fix": start the sync, let the token expire, and poll status every second,
// alternating the job token and the expired owner token, until completed.
func TestSeedScenario_JobStatusSurvivesTokenExpiry(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: seedAccessTTL, JobDuration: seedJobDuration})
	s := jobsSite(t, up, "store memory")
	before := scrape(t)
	access := s.login("seed@example.com")
	res := s.do(http.MethodPost, "/leasing/renewals/sync", nil, "Authorization", "Bearer "+access)
	if res.status != http.StatusAccepted || res.json(t)["jobToken"] == nil {
		t.Fatalf("body_field jobToken: %d %s", res.status, res.body)
	}
	jobID, jobToken := startSync(t, s, access)
	status := "/leasing/renewals/sync/" + jobID

	// Before expiry the plain access token works.
	if res := s.do(http.MethodGet, status, nil, "Authorization", "Bearer "+access); res.status != http.StatusOK {
		t.Fatalf("poll with a valid token: %d %s", res.status, res.body)
	}
	time.Sleep(seedAccessTTL + 100*time.Millisecond)
	if res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access); res.status != http.StatusUnauthorized {
		t.Fatalf("the token did not expire: %d", res.status)
	}

	polls := 0
	for deadline := time.Now().Add(seedJobDuration + 5*time.Second); time.Now().Before(deadline); polls++ {
		var res response
		if polls%2 == 0 {
			res = s.do(http.MethodGet, status, nil, "X-Job-Token", jobToken)
		} else {
			res = s.do(http.MethodGet, status, nil, "Authorization", "Bearer "+access)
		}
		if res.status != http.StatusOK {
			t.Fatalf("poll %d: %d %s", polls, res.status, res.body)
		}
		h, _ := up.seen()
		if got := h.Get("Authorization"); got == "" || got == "Bearer "+access {
			t.Fatalf("poll %d: the API got %q, not a fresh token", polls, got)
		}
		if h.Get("X-Job-Token") != "" {
			t.Fatal("the job token was forwarded to the API")
		}
		if res.json(t)["status"] == "completed" {
			break
		}
		time.Sleep(time.Second)
	}
	if polls < 4 {
		t.Fatalf("the job completed after %d polls; the scenario needs several after expiry", polls)
	}
	m := scrape(t)
	for _, auth := range []string{"access", "job_token", "expired_owner"} {
		if d := metricValue(m, "caddy_tokengate_job_status_requests_total", "auth", auth) -
			metricValue(before, "caddy_tokengate_job_status_requests_total", "auth", auth); d < 1 {
			t.Errorf("job_status_requests_total{auth=%q} grew by %v", auth, d)
		}
	}
	if d := metricValue(m, "caddy_tokengate_job_grants_total") - metricValue(before, "caddy_tokengate_job_grants_total"); d != 2 {
		t.Errorf("job_grants_total grew by %v, want 2 (two jobs started)", d)
	}
	if d := metricValue(m, "caddy_tokengate_logouts_prevented_total") - metricValue(before, "caddy_tokengate_logouts_prevented_total"); d < 3 {
		t.Errorf("logouts_prevented_total grew by %v", d)
	}
	// "completed" is a done value: the grant was shortened to end in 1m.
	if d := metricValue(m, "caddy_tokengate_store_duration_seconds", "op", "shorten_grant") -
		metricValue(before, "caddy_tokengate_store_duration_seconds", "op", "shorten_grant"); d != 1 {
		t.Errorf("shorten_grant ran %v times, want once (after the completed poll)", d)
	}
}

func TestJobStatus_RefusesWhatIsNotTheOwnersOrThisJobs(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: seedAccessTTL, JobDuration: time.Hour})
	s := jobsSite(t, up, "store memory")
	alice := s.login("alice.jobs@example.com")
	bob := s.login("bob.jobs@example.com")
	jobA, tokenA := startSync(t, s, alice)
	jobB, tokenB := startSync(t, s, bob)
	time.Sleep(seedAccessTTL + 100*time.Millisecond)
	status := "/leasing/renewals/sync/"

	for _, tc := range []struct {
		name    string
		path    string
		headers []string
		status  int
		reason  string
	}{
		{"another user's expired token", status + jobA, []string{"Authorization", "Bearer " + bob}, 401, "expired"},
		{"another job's token", status + jobA, []string{"X-Job-Token", tokenB}, 403, "wrong_job"},
		{"another job's token as bearer", status + jobA, []string{"Authorization", "Bearer " + tokenB}, 403, "wrong_job"},
		{"tampered job token", status + jobA, []string{"X-Job-Token", tokenA[:len(tokenA)-4] + "AAAA"}, 401, "bad_signature"},
		{"job token on another route", "/leasing/renewals", []string{"Authorization", "Bearer " + tokenA}, 401, "wrong_token_kind"},
		{"job token to start a job", "/leasing/renewals/sync", []string{"Authorization", "Bearer " + tokenA}, 401, "wrong_token_kind"},
		{"access token where a job token belongs", status + jobA, []string{"X-Job-Token", alice}, 401, "wrong_token_kind"},
		{"garbage job token", status + jobA, []string{"X-Job-Token", "garbage"}, 401, "malformed"},
		{"nothing", status + jobA, nil, 401, "missing"},
	} {
		method := http.MethodGet
		if strings.HasSuffix(tc.path, "/sync") {
			method = http.MethodPost
		}
		res := s.do(method, tc.path, nil, tc.headers...)
		if res.status != tc.status || res.json(t)["reason"] != tc.reason {
			t.Errorf("%s: %d %s, want %d %s", tc.name, res.status, res.body, tc.status, tc.reason)
		}
	}
	// Each owner's own token still works, and the job ids are distinct.
	if res := s.do(http.MethodGet, status+jobB, nil, "X-Job-Token", tokenB); res.status != http.StatusOK || jobA == jobB {
		t.Fatalf("bob's own job: %d %s", res.status, res.body)
	}
}

// TestJobGrants_SurviveRestartOnFileAndLiveInRedis: the grant outlives the
// Caddy process on the file store, and is a Redis key on the redis store.
func TestJobGrants_SurviveRestartOnFileAndLiveInRedis(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: time.Hour, JobDuration: time.Hour})
	env := "TG_IT_SECRET=" + string(apiSecret)
	p := startCaddy(t, t.TempDir(), jobsBody(up, "store file"), env)
	jobID, jobToken := startSync(t, p.site, p.site.login("restart.jobs@example.com"))
	p.restart()
	if res := p.site.do(http.MethodGet, "/leasing/renewals/sync/"+jobID, nil, "X-Job-Token", jobToken); res.status != http.StatusOK {
		t.Fatalf("job token after restart: %d %s", res.status, res.body)
	}

	srv := storetest.StartRedis(t)
	s := jobsSite(t, up, "store redis "+srv.Addr)
	startSync(t, s, s.login("redis.jobs@example.com"))
	c := srv.Client()
	keys := c.Keys(context.Background(), "tokengate:job:*").Val()
	if len(keys) != 1 {
		t.Fatalf("job grant keys in Redis: %v", keys)
	}
	if ttl := c.PTTL(context.Background(), keys[0]).Val(); ttl < 47*time.Hour || ttl > 48*time.Hour {
		t.Fatalf("job grant TTL %v, want the job ttl (48h)", ttl)
	}
}
