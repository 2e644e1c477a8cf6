// Package caddy holds tokengate's integration tests: a real Caddy running
// in-process (driven through its admin API with caddytest), the stand-in
// leasing API as the upstream, and Prometheus scrapes of Caddy's admin
// /metrics. Tests here share one Caddy, so they do not run in parallel.
package caddy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	_ "github.com/tokengate/tokengate/plugin"
)

// apiSecret is the stand-in API's signing secret in these tests.
var apiSecret = []byte("it-3f9a1c7e5b2d8a4c6e0f1b3d5a7c9e2f4b6d8a0c")

var adminPort int

// testHome is the temp dir standing in for HOME and the XDG dirs.
var testHome string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	home, err := os.MkdirTemp("", "tokengate-caddy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	testHome = home
	// Tests that build cmd/caddy keep using the developer's Go caches,
	// which default to places under HOME.
	if out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output(); err == nil {
		for i, v := range strings.Fields(string(out)) {
			os.Setenv([]string{"GOCACHE", "GOMODCACHE", "GOPATH"}[i], v)
		}
	}
	// Caddy writes its data and autosaved config under these; keep them in
	// the temp dir.
	for _, v := range []string{"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"} {
		os.Setenv(v, home)
	}
	adminPort = freePort()
	initial := fmt.Sprintf(`{"admin":{"listen":"localhost:%d","config":{"persist":false}}}`, adminPort)
	if err := caddy.Load([]byte(initial), true); err != nil {
		fmt.Fprintln(os.Stderr, "starting caddy:", err)
		return 1
	}
	defer caddy.Stop() //nolint:errcheck
	return m.Run()
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is the stand-in API behind the proxy, recording what it was sent.
type upstream struct {
	*httptest.Server
	API      *leasing.API
	mu       sync.Mutex
	last     http.Header
	lastBody []byte
	hits     int
}

func newUpstream(t *testing.T, cfg leasing.Config) *upstream {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = apiSecret
	}
	u := &upstream{API: leasing.New(cfg)}
	u.Server = httptest.NewServer(u.record())
	t.Cleanup(u.Close)
	return u
}

// record serves the API and notes what each request brought.
func (u *upstream) record() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.lastBody = body
		u.hits++
		u.mu.Unlock()
		u.API.ServeHTTP(w, r)
	})
}

// newUpstreamAt serves the stand-in API on a given address (an API that
// comes back where it was).
func newUpstreamAt(t *testing.T, addr string, cfg leasing.Config) *upstream {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = apiSecret
	}
	u := &upstream{API: leasing.New(cfg)}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: u.record()}}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// newUpstreamHandler serves any handler as the upstream.
func newUpstreamHandler(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// body returns the body of the last request the API received.
func (u *upstream) body() []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastBody
}

// seen returns the headers of the last request the API received and how
// many it received.
func (u *upstream) seen() (http.Header, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.hits
}

// site is a Caddy config loaded for one test.
type site struct {
	t      *testing.T
	tester *caddytest.Tester
	base   string
}

// globalOptions are the options every test config starts with.
func globalOptions() string {
	return fmt.Sprintf(`{
	admin localhost:%d
	auto_https off
	persist_config off
	skip_install_trust
}
`, adminPort)
}

// loadSite loads a config with one HTTP site whose body is given; {{addr}}
// in the body is unused, the site address is chosen here.
func loadSite(t *testing.T, body string) *site {
	t.Helper()
	port := freePort()
	cfg := globalOptions() + fmt.Sprintf("http://127.0.0.1:%d {\n%s\n}\n", port, body)
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
	tester.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	return &site{t: t, tester: tester, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

// loadRaw posts a Caddyfile to the admin API and returns the status and body.
func loadRaw(t *testing.T, caddyfile string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://localhost:%d/load", adminPort), strings.NewReader(caddyfile))
	req.Header.Set("Content-Type", "text/caddyfile")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return m
}

// do sends a request to the site; headers are name, value pairs.
func (s *site) do(method, path string, body any, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// login signs in through the proxy as the given email and returns the
// API's access token.
func (s *site) login(email string) string {
	s.t.Helper()
	res := s.do(http.MethodPost, "/auth/verify-otp", map[string]string{"email": email, "otp": leasing.DemoOTP})
	if res.status != http.StatusOK {
		s.t.Fatalf("login: %d %s", res.status, res.body)
	}
	tok, _ := res.json(s.t)["access_token"].(string)
	if tok == "" {
		s.t.Fatalf("login answer has no access_token: %s", res.body)
	}
	return tok
}

// scrape reads Caddy's admin /metrics.
func scrape(t *testing.T) map[string]*metricFamily {
	t.Helper()
	res, err := http.Get(fmt.Sprintf("http://localhost:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	out := map[string]*metricFamily{}
	for name, f := range fams {
		mf := &metricFamily{}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			}
			mf.samples = append(mf.samples, sample{labels, v})
		}
		out[name] = mf
	}
	return out
}

type sample struct {
	labels map[string]string
	value  float64
}

type metricFamily struct{ samples []sample }

// value returns the sample whose labels include the given name, value pairs
// (a histogram's value is its count); missing is -1.
func metricValue(fams map[string]*metricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, s := range f.samples {
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value
	}
	return -1
}
