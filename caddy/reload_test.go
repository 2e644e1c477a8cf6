package caddy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

func TestReload_KeepsCountersAndServes(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	tok := s.login("dave@example.com")
	name := "caddy_tokengate_rejections_total"

	s.do(http.MethodGet, "/leasing/renewals", nil)
	before := metricValue(scrape(t), name, "reason", "missing")
	if before < 1 {
		t.Fatalf("%s{reason=missing} = %v before reload", name, before)
	}

	// The same site with one more public path: a real config change.
	t.Setenv("TG_IT_SECRET", string(apiSecret))
	port := strings.TrimPrefix(s.base, "http://127.0.0.1:")
	status, body := loadRaw(t, globalOptions()+fmt.Sprintf(`http://127.0.0.1:%s {
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		public /health /auth/send-otp /auth/verify-otp /status
		forward_claim sub X-User-Id
	}
	reverse_proxy %s
}`, port, up.URL))
	if status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if got := metricValue(scrape(t), name, "reason", "missing"); got != before {
		t.Fatalf("after reload %s{reason=missing} = %v, want %v kept", name, got, before)
	}
	if res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+tok); res.status != http.StatusOK {
		t.Fatalf("valid token after reload: %d %s", res.status, res.body)
	}
	s.do(http.MethodGet, "/leasing/renewals", nil)
	if got := metricValue(scrape(t), name, "reason", "missing"); got != before+1 {
		t.Fatalf("after reload and one more refusal: %v, want %v", got, before+1)
	}
}

func TestLoad_WeakSecretIsRefusedAndOldConfigKeepsServing(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	tok := s.login("erin@example.com")

	t.Setenv("TG_IT_WEAK", "jatingupta9120")
	weak := func(extra string) string {
		return globalOptions() + fmt.Sprintf(`http://127.0.0.1:%d {
	tokengate {
		key HS256 {env.TG_IT_WEAK}
		%s
	}
	reverse_proxy %s
}`, freePort(), extra, up.URL)
	}
	status, body := loadRaw(t, weak(""))
	if status == http.StatusOK {
		t.Fatal("a config with the seed's 14-byte secret was loaded")
	}
	for _, want := range []string{"weak HMAC secret", "at least 32", "allow_weak_key"} {
		if !strings.Contains(body, want) {
			t.Errorf("load error %q does not mention %q", body, want)
		}
	}
	if strings.Contains(body, "jatingupta9120") {
		t.Error("load error quotes the secret")
	}
	if res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+tok); res.status != http.StatusOK {
		t.Fatalf("the running config stopped serving after a refused load: %d", res.status)
	}
	if got := metricValue(scrape(t), "caddy_tokengate_weak_key"); got != 0 {
		t.Fatalf("weak_key = %v with a strong secret", got)
	}

	if status, body := loadRaw(t, weak("allow_weak_key")); status != http.StatusOK {
		t.Fatalf("allow_weak_key did not start: %d %s", status, body)
	}
	if got := metricValue(scrape(t), "caddy_tokengate_weak_key"); got != 1 {
		t.Fatalf("weak_key = %v with allow_weak_key, want 1", got)
	}

	// Back to a strong secret: the old handler's cleanup lowers the gauge.
	apiSite(t, up)
	if got := metricValue(scrape(t), "caddy_tokengate_weak_key"); got != 0 {
		t.Fatalf("weak_key = %v after returning to a strong secret, want 0", got)
	}
}
