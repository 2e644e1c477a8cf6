package leasing

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := ConfigFromEnv(env(nil)); err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
		t.Fatalf("missing secret: %v", err)
	}
	cfg, err := ConfigFromEnv(env(map[string]string{"JWT_SECRET": "s", "JWT_EXPIRES_IN": "2s", "JOB_DURATION": "8s"}))
	if err != nil || cfg.AccessTTL != 2*time.Second || cfg.JobDuration != 8*time.Second {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
	if _, err := ConfigFromEnv(env(map[string]string{"JWT_SECRET": "s", "ACCESS_TTL": "1 hour"})); err == nil {
		t.Fatal("bad duration accepted")
	}
}

// TestGuard_RefusesWhatTheRealGuardRefuses: the stand-in's own check is the
// upstream half of every integration test, so it must be strict.
func TestGuard_RefusesWhatTheRealGuardRefuses(t *testing.T) {
	t.Parallel()
	now := time.Now()
	api := New(Config{Secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cret"), AccessTTL: time.Minute, Now: func() time.Time { return now }})
	good, _ := api.Sign(UserFor("a@example.com"))
	other := New(Config{Secret: []byte("another-another-another-another")})
	forged, _ := other.Sign(UserFor("a@example.com"))
	past := New(Config{Secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cret"), AccessTTL: time.Minute, Now: func() time.Time { return now.Add(-time.Hour) }})
	expired, _ := past.Sign(UserFor("a@example.com"))
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"valid", "Bearer " + good, 200},
		{"no header", "", 401},
		{"other secret", "Bearer " + forged, 401},
		{"expired", "Bearer " + expired, 401},
		{"no scheme", good, 401},
	} {
		req := httptest.NewRequest(http.MethodGet, "/leasing/renewals", nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
	}
}

func TestJobs_ProgressAndOwnership(t *testing.T) {
	t.Parallel()
	now := time.Now()
	api := New(Config{Secret: []byte("s3cret-s3cret-s3cret-s3cret-s3cret"), JobDuration: 10 * time.Second, Now: func() time.Time { return now }})
	alice, _ := api.Sign(UserFor("alice@example.com"))
	bob, _ := api.Sign(UserFor("bob@example.com"))
	call := func(method, path, tok string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		return w
	}
	w := call(http.MethodPost, "/leasing/renewals/sync", alice)
	if w.Code != http.StatusAccepted || !strings.Contains(w.Body.String(), `"jobId":"job_`) {
		t.Fatalf("start: %d %s", w.Code, w.Body)
	}
	id := strings.Split(strings.Split(w.Body.String(), `"jobId":"`)[1], `"`)[0]
	now = now.Add(5 * time.Second)
	if w := call(http.MethodGet, "/leasing/renewals/sync/"+id, alice); !strings.Contains(w.Body.String(), `"status":"running","progress":50`) {
		t.Fatalf("halfway: %s", w.Body)
	}
	if w := call(http.MethodGet, "/leasing/renewals/sync/"+id, bob); w.Code != http.StatusNotFound {
		t.Fatalf("another user's job: %d", w.Code)
	}
	now = now.Add(5 * time.Second)
	if w := call(http.MethodGet, "/leasing/renewals/sync/"+id, alice); !strings.Contains(w.Body.String(), `"status":"completed","progress":100`) {
		t.Fatalf("done: %s", w.Body)
	}
}
