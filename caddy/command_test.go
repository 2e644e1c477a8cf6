package caddy

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

// cli runs `caddy tokengate <args>` and returns stdout, stderr and the exit code.
func cli(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	bin, err := buildCaddy()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"tokengate"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func writeCaddyfile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCLI_InspectGivesTheRightVerdict(t *testing.T) {
	cfg := writeCaddyfile(t, ":8080 {\n\ttokengate {\n\t\tkey HS256 {env.TG_CLI_SECRET}\n\t}\n\trespond ok\n}\n")
	env := []string{"TG_CLI_SECRET=" + string(apiSecret)}
	now := time.Now()
	valid := signHS(t, tokentest.Claims("cli-user", now, time.Hour))
	expired := signHS(t, tokentest.Claims("cli-user", now.Add(-3*time.Hour), time.Hour))
	forged := tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims("admin", now, time.Hour), tokentest.HS256([]byte("not-the-api-secret-not-the-api-secret")))
	for _, tc := range []struct {
		name, tok string
		code      int
		want      []string
	}{
		{"valid", valid, 0, []string{"verdict: valid", `"sub": "cli-user"`, "(in 59m"}},
		{"expired", expired, 3, []string{"verdict: expired", "ago)"}},
		{"forged", forged, 4, []string{"verdict: refused (bad_signature)"}},
		{"garbage", "garbage", 4, []string{"verdict: refused (malformed)"}},
		{"bearer prefix", "Bearer " + valid, 0, []string{"verdict: valid"}},
	} {
		out, errOut, code := cli(t, env, "inspect", tc.tok, "--config", cfg)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, code, tc.code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
		if strings.Contains(out+errOut, string(apiSecret)) {
			t.Errorf("%s: the secret was printed", tc.name)
		}
	}
	if _, errOut, code := cli(t, nil, "inspect", valid, "--config", filepath.Join(t.TempDir(), "missing")); code != 2 || errOut == "" {
		t.Errorf("missing config: exit %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, []string{"TG_CLI_SECRET=short"}, "inspect", valid, "--config", cfg); code != 2 || !strings.Contains(errOut, "weak HMAC secret") {
		t.Errorf("weak secret: exit %d %q", code, errOut)
	}
}

func TestCLI_GenSecretAndMint(t *testing.T) {
	out, _, code := cli(t, nil, "gen-secret")
	secret := strings.TrimSpace(out)
	if code != 0 || token.CheckHMACSecret([]byte(secret)) != nil || len(secret) < 60 {
		t.Fatalf("gen-secret: exit %d %q", code, secret)
	}
	if _, _, code := cli(t, nil, "gen-secret", "--bytes", "16"); code != 2 {
		t.Fatalf("gen-secret --bytes 16: exit %d", code)
	}
	cfg := writeCaddyfile(t, ":8080 {\n\ttokengate {\n\t\tkey HS256 {env.TG_CLI_SECRET}\n\t\tissuer https://api.example\n\t}\n\trespond ok\n}\n")
	env := []string{"TG_CLI_SECRET=" + secret}
	out, errOut, code := cli(t, env, "mint", "--sub", "ops", "--claim", "role=admin", "--claim", "level=3", "--ttl", "10m", "--config", cfg)
	minted := strings.TrimSpace(out)
	if code != 0 || strings.Count(minted, ".") != 2 {
		t.Fatalf("mint: exit %d %q %q", code, out, errOut)
	}
	out, _, code = cli(t, env, "inspect", minted, "--config", cfg)
	if code != 0 || !strings.Contains(out, `"role": "admin"`) || !strings.Contains(out, `"level": 3`) || !strings.Contains(out, `"iss": "https://api.example"`) {
		t.Fatalf("inspect of a minted token: exit %d\n%s", code, out)
	}
	if _, _, code := cli(t, env, "mint", "--config", cfg); code != 2 {
		t.Fatalf("mint without --sub: exit %d", code)
	}
}

func TestCLI_SessionsListAndRevoke(t *testing.T) {
	srv := storetest.StartRedis(t)
	up := newUpstream(t, leasing.Config{})
	body := fmt.Sprintf(`
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		session {
			login POST /auth/verify-otp
			refresh /auth/refresh
		}
		store redis %s
	}
	reverse_proxy %s`, srv.Addr, up.URL)
	s := sessionSite(t, up, "store redis "+srv.Addr, "")
	_, r1, _ := s.loginSession("cli.sessions@example.com")
	s.loginSession("cli.sessions@example.com")
	s.loginSession("someone.else@example.com")
	cfg := writeCaddyfile(t, "http://127.0.0.1:1 {\n"+body+"\n}\n")
	env := []string{"TG_IT_SECRET=" + string(apiSecret)}
	sub := leasing.UserFor("cli.sessions@example.com").ID

	out, errOut, code := cli(t, env, "sessions", "list", "--subject", sub, "--config", cfg)
	if code != 0 || strings.Count(out, " live ") != 2 || !strings.Contains(out, "2 session(s)") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	out, _, code = cli(t, env, "sessions", "revoke", "--subject", sub, "--config", cfg)
	if code != 0 || !strings.Contains(out, "2 session(s)") {
		t.Fatalf("revoke: exit %d\n%s", code, out)
	}
	if res := s.refreshWith(r1); res.status != http.StatusUnauthorized {
		t.Fatalf("refresh after revoke: %d %s", res.status, res.body)
	}
	other := leasing.UserFor("someone.else@example.com").ID
	if out, _, _ := cli(t, env, "sessions", "list", "--subject", other, "--config", cfg); !strings.Contains(out, "1 session(s)") {
		t.Fatalf("another user's session was touched:\n%s", out)
	}
	if _, errOut, code := cli(t, env, "sessions", "list", "--config", cfg); code != 2 || !strings.Contains(errOut, "--subject") {
		t.Fatalf("list without --subject: exit %d %q", code, errOut)
	}
}
