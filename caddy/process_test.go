package caddy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// buildCaddy builds cmd/caddy once per test binary, for tests that need a
// Caddy process of their own (restarts, several replicas).
var buildCaddy = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(testHome, "bin", "caddy")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/caddy").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building caddy: %v\n%s", err, out)
	}
	return bin, nil
})

// caddyProc is a Caddy process running one site.
type caddyProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	config  string
	dataDir string
	env     []string
	site    *site
	log     *os.File
}

// startCaddy runs bin/caddy with one HTTP site of the given body on a free
// port; dataDir is its HOME and XDG dirs, kept across restarts.
func startCaddy(t *testing.T, dataDir, body string, env ...string) *caddyProc {
	t.Helper()
	port := freePort()
	cfg := filepath.Join(t.TempDir(), "Caddyfile")
	content := fmt.Sprintf("{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\nhttp://127.0.0.1:%d {\n%s\n}\n", port, body)
	if err := os.WriteFile(cfg, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return startCaddyFile(t, dataDir, cfg, fmt.Sprintf("http://127.0.0.1:%d", port), env...)
}

// startCaddyFile runs bin/caddy with an existing config file whose site
// answers at base.
func startCaddyFile(t *testing.T, dataDir, cfg, base string, env ...string) *caddyProc {
	t.Helper()
	if _, err := buildCaddy(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{t: t, config: cfg, dataDir: dataDir, env: env, site: &site{t: t, base: base}}
	p.start()
	t.Cleanup(p.stop)
	return p
}

func (p *caddyProc) start() {
	p.t.Helper()
	bin, _ := buildCaddy()
	log, err := os.CreateTemp(p.t.TempDir(), "caddy-*.log")
	if err != nil {
		p.t.Fatal(err)
	}
	p.log = log
	p.cmd = exec.Command(bin, "run", "--config", p.config, "--adapter", "caddyfile")
	p.cmd.Dir = filepath.Dir(p.config)
	p.cmd.Env = append(os.Environ(), "HOME="+p.dataDir, "XDG_DATA_HOME="+p.dataDir, "XDG_CONFIG_HOME="+p.dataDir)
	p.cmd.Env = append(p.cmd.Env, p.env...)
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(p.site.base + "/health")
		if err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(log.Name())
	p.t.Fatalf("caddy did not start:\n%s", b)
}

// stop ends the process the way a service manager does (SIGINT, then wait).
func (p *caddyProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

func (p *caddyProc) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}
