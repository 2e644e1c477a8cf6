// Command tokengate-bench compares tokengate with plain reverse_proxy in one
// run: one Caddy process serves each variant on its own port in front of the
// same upstream, and the variants are measured in interleaved rounds
// (A B C A B C ...) so that drift on the machine hits all of them alike.
// It prints requests/s, p50 and p99 per variant and each ratio to plain.
//
//	go run ./cmd/tokengate-bench -caddy bin/caddy -rounds 6 -duration 3s -c 32
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "bench-4f1a9c3e7b5d2a8c6e0f1b3d5a7c9e2f4b6d8a0c"

type variant struct {
	name   string
	port   int
	status int    // expected status
	site   string // the Caddyfile site body, %s is the upstream
	path   string
	header http.Header
	// setup runs once Caddy is up, to log in or start a job.
	setup func(c *http.Client, v *variant) error

	requests int64
	elapsed  time.Duration
	lat      []time.Duration
}

const gateOnly = `
	tokengate {
		key HS256 {env.BENCH_SECRET}
	}
	reverse_proxy %s`

// sessionSite has sessions on the given store and jobs; leeway 0 so the
// 2-second login token is expired when the load starts.
func sessionSite(storeLine string) string {
	return `
	tokengate {
		key HS256 {env.BENCH_SECRET}
		leeway 0s
		session {
			login POST /login
			refresh /auth/refresh
			access_ttl 1h
		}
		job POST /sync {
			status GET /sync/{id}
		}
		` + storeLine + `
	}
	reverse_proxy %s`
}

// loginExpired logs in through the variant's site, waits for the login
// token to expire, and sends the expired token with the refresh cookie.
func loginExpired(c *http.Client, v *variant) error {
	res, err := c.Post(fmt.Sprintf("http://127.0.0.1:%d/login", v.port), "application/json", nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return err
	}
	var cookie string
	for _, ck := range res.Cookies() {
		if ck.Name == "tg_refresh" {
			cookie = ck.Value
		}
	}
	if body.AccessToken == "" || cookie == "" {
		return fmt.Errorf("%s: login gave no token or cookie", v.name)
	}
	time.Sleep(loginTTL + 100*time.Millisecond)
	v.header = http.Header{"Authorization": {"Bearer " + body.AccessToken}, "Cookie": {"tg_refresh=" + cookie}}
	return nil
}

// startJob starts a job with a valid token and polls with its job token.
func startJob(c *http.Client, v *variant) error {
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/sync", v.port), nil)
	req.Header.Set("Authorization", "Bearer "+mint(time.Hour))
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	jt := res.Header.Get("X-Job-Token")
	if jt == "" {
		return fmt.Errorf("%s: no job token (status %d)", v.name, res.StatusCode)
	}
	v.header = http.Header{"X-Job-Token": {jt}}
	return nil
}

// loginTTL is the lifetime of the upstream's login tokens.
const loginTTL = 2 * time.Second

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "Caddy binary with tokengate compiled in")
	rounds := flag.Int("rounds", 6, "interleaved rounds")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary for the redis-store variant (empty: skip that variant)")
	core := flag.Bool("core", false, "only plain, valid-token and rejection variants (the two targets), for more rounds in the same time")
	dur := flag.Duration("duration", 3*time.Second, "length of one variant's turn in a round")
	conc := flag.Int("c", 32, "concurrent connections")
	flag.Parse()
	if err := run(*caddyBin, *redisBin, *rounds, *dur, *conc, *core); err != nil {
		log.Fatal(err)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mint(ttl time.Duration) string {
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "u_bench", "email": "bench@example.com", "role": "user",
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		log.Fatal(err)
	}
	return s
}

func run(caddyBin, redisBin string, rounds int, dur time.Duration, conc int, core bool) error {
	// The upstream: a small JSON answer, as the API's list routes give, a
	// login route and a job.
	body := []byte(`{"renewals":[{"id":"r-1001","tenant":"Acme Stores"}]}`)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(upLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			switch {
			case r.URL.Path == "/login":
				fmt.Fprintf(w, `{"access_token":%q}`, mint(loginTTL))
			case r.Method == http.MethodPost && r.URL.Path == "/sync":
				_, _ = w.Write([]byte(`{"jobId":"job_1","message":"Job started"}`))
			case r.URL.Path == "/sync/job_1":
				_, _ = w.Write([]byte(`{"status":"running","progress":50}`))
			default:
				_, _ = w.Write(body)
			}
		}))
	}()

	dir, err := os.MkdirTemp("", "tokengate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	variants := []*variant{
		{name: "plain reverse_proxy", site: "\n\treverse_proxy %s", path: "/leasing/renewals", status: 200},
		{name: "tokengate, valid HS256", site: gateOnly, path: "/leasing/renewals", header: bearer(mint(time.Hour)), status: 200},
		{name: "tokengate, expired token rejected", site: gateOnly, path: "/leasing/renewals", header: bearer(mint(-time.Hour)), status: 401},
		{name: "inline refresh, memory store", site: sessionSite("store memory"), path: "/leasing/renewals", setup: loginExpired, status: 200},
		{name: "inline refresh, file store", site: sessionSite("store file " + filepath.Join(dir, "s.db")), path: "/leasing/renewals", setup: loginExpired, status: 200},
		{name: "job status, job token (memory)", site: sessionSite("store memory"), path: "/sync/job_1", setup: startJob, status: 200},
	}
	if core {
		variants, redisBin = variants[:3], ""
	}
	if redisBin != "" {
		addr, stop, err := startRedis(redisBin, dir)
		if err != nil {
			return err
		}
		defer stop()
		variants = append(variants[:5], append([]*variant{{name: "inline refresh, redis store",
			site: sessionSite("store redis " + addr), path: "/leasing/renewals", setup: loginExpired, status: 200}}, variants[5:]...)...)
	}
	cfg := "{\n\tadmin off\n\tauto_https off\n\tpersist_config off\n}\n"
	for _, v := range variants {
		v.port = freePort()
		cfg += fmt.Sprintf("http://127.0.0.1:%d {%s\n}\n", v.port, fmt.Sprintf(v.site, upLn.Addr()))
	}
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(caddyBin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "BENCH_SECRET="+secret, "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w (run make build first)", caddyBin, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 10 * time.Second}
	for _, v := range variants {
		if err := waitPort(v); err != nil {
			return err
		}
	}
	for _, v := range variants {
		if v.setup != nil {
			if err := v.setup(client, v); err != nil {
				return err
			}
		}
		if st, err := get(client, v); err != nil || st != v.status {
			return fmt.Errorf("%s answers %d (%v), want %d", v.name, st, err, v.status)
		}
	}
	fmt.Printf("tokengate-bench: %d rounds x %s per variant, %d connections, GOMAXPROCS of the machine: %d cores\n",
		rounds, dur, conc, numCPU())
	// Warm-up: one short pass of each.
	for _, v := range variants {
		load(client, v, dur/3, conc, false)
	}
	for r := 0; r < rounds; r++ {
		for _, v := range variants {
			if err := load(client, v, dur, conc, true); err != nil {
				return err
			}
		}
	}
	base := float64(variants[0].requests) / variants[0].elapsed.Seconds()
	fmt.Printf("%-36s %12s %10s %10s %8s\n", "variant", "req/s", "p50", "p99", "vs plain")
	for _, v := range variants {
		slices.Sort(v.lat)
		rps := float64(v.requests) / v.elapsed.Seconds()
		fmt.Printf("%-36s %12.0f %10s %10s %7.3fx\n", v.name, rps,
			pct(v.lat, 0.50).Round(time.Microsecond), pct(v.lat, 0.99).Round(time.Microsecond), rps/base)
	}
	return nil
}

func numCPU() int { return runtime.NumCPU() }

func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[int(float64(len(l)-1)*p)]
}

func waitPort(v *variant) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", v.port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start on port %d", v.name, v.port)
}

// startRedis runs a throwaway redis-server on a free port.
func startRedis(bin, dir string) (string, func(), error) {
	port := freePort()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w (or pass -redis-server '')", bin, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return "", nil, errors.New("redis-server did not start")
}

func get(c *http.Client, v *variant) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", v.port, v.path), nil)
	for k, vals := range v.header {
		req.Header[k] = vals
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// load runs conc workers against v for d; with record set, it adds the
// requests, time and latencies to v.
func load(c *http.Client, v *variant, d time.Duration, conc int, record bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var n int64
	var mu sync.Mutex
	var failed error
	lats := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				st, err := get(c, v)
				if err == nil && st != v.status {
					err = fmt.Errorf("%s: status %d, want %d", v.name, st, v.status)
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					mu.Lock()
					failed = errors.Join(failed, err)
					mu.Unlock()
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
				atomic.AddInt64(&n, 1)
			}
		}(w)
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	if record {
		v.requests += n
		v.elapsed += time.Since(start)
		for _, l := range lats {
			v.lat = append(v.lat, l...)
		}
	}
	return nil
}
