package caddy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
)

const promDir = "../examples/prometheus/"

func promtool(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatalf("promtool is not installed (apt-get install -y prometheus; .ci/run does it): %v", err)
	}
	cmd := exec.Command("promtool", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func rawScrape(t *testing.T) []byte {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// TestMonitoring_RulesAndScrapePassPromtool: the example rules and config
// pass promtool, a live scrape of Caddy with tokengate passes promtool's
// metric lint, and every metric a rule or the dashboard names is in it.
func TestMonitoring_RulesAndScrapePassPromtool(t *testing.T) {
	promtool(t, nil, "check", "rules", promDir+"alerts.yml")
	promtool(t, nil, "check", "config", promDir+"prometheus.yml")

	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store memory", "")
	s.loginSession("monitoring@example.com")
	s.do(http.MethodGet, "/leasing/renewals", nil)
	scraped := rawScrape(t)
	// promtool lints what tokengate exports (Caddy's own metrics are
	// Caddy's business).
	var ours bytes.Buffer
	for _, line := range strings.SplitAfter(string(scraped), "\n") {
		if strings.Contains(line, "caddy_tokengate_") {
			ours.WriteString(line)
		}
	}
	if ours.Len() == 0 {
		t.Fatal("the scrape has no tokengate metrics")
	}
	promtool(t, ours.Bytes(), "check", "metrics")

	fams := scrape(t)
	named := map[string]bool{}
	metric := regexp.MustCompile(`caddy_tokengate_[a-z_]+`)
	for _, file := range []string{"alerts.yml", "grafana-dashboard.json"} {
		b, err := os.ReadFile(promDir + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metric.FindAllString(string(b), -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(m, suffix); ok && fams[base] != nil {
					m = base
				}
			}
			named[m] = true
		}
	}
	var missing []string
	for m := range named {
		if fams[m] == nil {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("rules or dashboard name metrics the scrape lacks: %v", missing)
	}
	if len(named) < 12 {
		t.Fatalf("only %d tokengate metrics named in rules and dashboard", len(named))
	}
}
