package caddy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

// TestFrontend_PagePollsAcrossTokenExpiriesInChromium loads the demo page of
// examples/frontend, served by Caddy next to tokengate, in headless
// Chromium: it logs in, starts a sync and polls it across several
// access-token expiries (tokens of 2s, a job of 7s) with no 401 at all.
func TestFrontend_PagePollsAcrossTokenExpiriesInChromium(t *testing.T) {
	dir, err := filepath.Abs("../examples/frontend")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("playwright-core is not installed: run `npm ci` in examples/frontend (make test does): %v", err)
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatalf("chromium is not installed (apt-get install -y chromium; .ci/run does it): %v", err)
	}
	up := newUpstream(t, leasing.Config{AccessTTL: 2 * time.Second, JobDuration: 7 * time.Second})
	port := freePort()
	base := fmt.Sprintf("http://localhost:%d", port)
	cfg := writeCaddyfile(t, fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
%s {
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		leeway 0s
		public /app/* /health /auth/send-otp
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
			logout /auth/logout
		}
		job POST /leasing/renewals/sync {
			status GET /leasing/renewals/sync/{id}
		}
		store memory
	}
	handle_path /app/* {
		root * %s
		file_server
	}
	reverse_proxy %s
}
`, base, dir, up.URL))
	startCaddyFile(t, t.TempDir(), cfg, base, "TG_IT_SECRET="+string(apiSecret))

	shot := filepath.Join(t.ArtifactDir(), "frontend.png")
	cmd := exec.Command("node", "browser-test.mjs", base+"/app/index.html", shot)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser test: %v\n%s", err, out)
	}
	var res struct {
		Done      bool
		Error     string
		Status    string
		HTTP401   int `json:"http401"`
		Responses int
		Stats     struct{ Requests, Unauthorized, Adopted int }
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("browser test output: %v\n%s", err, out)
	}
	t.Logf("page: %+v; screenshot %s", res, shot)
	if !res.Done || res.Error != "" || res.Status != "completed" {
		t.Fatalf("the sync did not complete on the page: %+v", res)
	}
	if res.HTTP401 != 0 || res.Stats.Unauthorized != 0 {
		t.Fatalf("%d responses were 401", res.HTTP401)
	}
	if res.Stats.Adopted < 2 {
		t.Fatalf("the page adopted %d refreshed tokens; the run must cross two expiries", res.Stats.Adopted)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot: %v", err)
	}
}
