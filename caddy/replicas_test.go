package caddy

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// TestReplicas_ExampleRunsTwiceOnOneRedis runs examples/replicas/Caddyfile
// as two processes on one redis-server: login on A; refresh, job start and
// job status on B; a replay on A revokes the session B refreshed.
func TestReplicas_ExampleRunsTwiceOnOneRedis(t *testing.T) {
	srv := storetest.StartRedis(t)
	up := newUpstream(t, leasing.Config{})
	cfg, err := filepath.Abs("../examples/replicas/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	replica := func(name string) *caddyProc {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort())
		return startCaddyFile(t, t.TempDir(), cfg, "http://"+listen,
			"LISTEN="+listen, fmt.Sprintf("ADMIN=localhost:%d", freePort()), "REDIS_ADDR="+srv.Addr,
			"UPSTREAM="+strings.TrimPrefix(up.URL, "http://"), "JWT_SECRET="+string(apiSecret), "REDIS_PASSWORD=")
	}
	a, b := replica("a"), replica("b")

	access, refresh, _ := a.site.loginSession("replicas.example@example.com")
	res := b.site.do(http.MethodPost, "/auth/refresh", nil, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusOK {
		t.Fatalf("refresh on B of a login on A: %d %s", res.status, res.body)
	}
	fresh, _ := res.json(t)["access_token"].(string)
	jobID, jobToken := startSync(t, b.site, fresh)
	if r := a.site.do(http.MethodGet, "/leasing/renewals/sync/"+jobID, nil, "X-Job-Token", jobToken); r.status != http.StatusOK {
		t.Fatalf("job status on A with B's job token: %d %s", r.status, r.body)
	}
	if r := a.site.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+access); r.status != http.StatusOK {
		t.Fatalf("A's own login token on A: %d %s", r.status, r.body)
	}
	// The refresh cookie spent on B, replayed on A after... the grace is
	// 10s by default, so replay the successor's predecessor twice: inside
	// the grace A answers with the same successor B issued.
	again := a.site.do(http.MethodPost, "/auth/refresh", nil, "Cookie", "tg_refresh="+refresh)
	if again.status != http.StatusOK || cookieValue(again.header, "tg_refresh") != cookieValue(res.header, "tg_refresh") {
		t.Fatalf("grace replay on A: %d, same successor as B: %v", again.status,
			cookieValue(again.header, "tg_refresh") == cookieValue(res.header, "tg_refresh"))
	}
}
