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
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("demo did not finish in 60s:\n%s", out)
	}
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{
		`"access_token":"ey`,
		`"reason":"missing"`,
		`"renewals":[`,
		`"reason":"unsupported_alg"`,
		`caddy_tokengate_rejections_total{reason="missing"} 1`,
		`caddy_tokengate_decisions_total{decision="allowed"} 1`,
		`"token_type":"Bearer"`,
		`"reason":"reused"`,
		`"reason":"revoked"`,
		"204",
		`caddy_tokengate_sessions_started_total 1`,
		`caddy_tokengate_refresh_reuse_detected_total 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
}
