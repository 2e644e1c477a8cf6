// Package demo holds the test of `make demo`: the script runs its tour
// against freshly built binaries and exits, and its output shows each step.
package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDemo_TourRunsAndShowsEachStep(t *testing.T) {
	bin := t.TempDir()
	for pkg, name := range map[string]string{"../../cmd/caddy": "caddy", "../leasing-api": "leasing-api"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("building %s: %v\n%s", pkg, err, out)
		}
	}
	cmd := exec.Command("bash", "demo.sh")
	cmd.Env = append(os.Environ(), "BIN="+bin, "DEMO_EXIT=1")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo did not finish in 90s:\n%s", out)
	}
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		`"access_token":"ey`,
		`Set-Cookie: tg_refresh=`,
		`X-Job-Token: ey`,
		`"status":"running"`,
		`X-Access-Token: ey`,
		`"token_type":"Bearer"`,
		`"reason":"unsupported_alg"`,
		`"status":"completed","progress":100`,
		`204 No Content`,
		`"reason":"unknown"`,
		`caddy_tokengate_job_grants_total 1`,
		`caddy_tokengate_job_status_requests_total{auth="expired_owner"} 1`,
		`caddy_tokengate_refreshes_total{mode="inline",result="rotated"} 1`,
		`caddy_tokengate_sessions_ended_total{reason="logout"} 1`,
		`Demo done`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
}
