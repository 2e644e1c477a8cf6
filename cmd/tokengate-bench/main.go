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
	token  string
	status int // expected status

	requests int64
	elapsed  time.Duration
	lat      []time.Duration
}

func main() {
	caddyBin := flag.String("caddy", "bin/caddy", "Caddy binary with tokengate compiled in")
	rounds := flag.Int("rounds", 6, "interleaved rounds")
	dur := flag.Duration("duration", 3*time.Second, "length of one variant's turn in a round")
	conc := flag.Int("c", 32, "concurrent connections")
	flag.Parse()
	if err := run(*caddyBin, *rounds, *dur, *conc); err != nil {
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

func run(caddyBin string, rounds int, dur time.Duration, conc int) error {
	// The upstream: a small JSON answer, as the API's list routes give.
	body := []byte(`{"renewals":[{"id":"r-1001","tenant":"Acme Stores"}]}`)
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(upLn, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}))
	}()

	variants := []*variant{
		{name: "plain reverse_proxy", port: freePort(), status: 200},
		{name: "tokengate, valid HS256", port: freePort(), token: mint(time.Hour), status: 200},
		{name: "tokengate, expired token rejected", port: freePort(), token: mint(-time.Hour), status: 401},
	}
	dir, err := os.MkdirTemp("", "tokengate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := fmt.Sprintf(`{
	admin off
	auto_https off
	persist_config off
}
http://127.0.0.1:%d {
	reverse_proxy %s
}
http://127.0.0.1:%d {
	tokengate {
		key HS256 {env.BENCH_SECRET}
	}
	reverse_proxy %s
}
http://127.0.0.1:%d {
	tokengate {
		key HS256 {env.BENCH_SECRET}
	}
	reverse_proxy %s
}
`, variants[0].port, upLn.Addr(), variants[1].port, upLn.Addr(), variants[2].port, upLn.Addr())
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
		if err := waitReady(client, v); err != nil {
			return err
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
	fmt.Printf("%-36s %12s %10s %10s %8s\n", "variant", "req/s", "p50", "p99", "ratio")
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

func waitReady(c *http.Client, v *variant) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := get(c, v); err == nil {
			if st != v.status {
				return fmt.Errorf("%s answers %d, want %d", v.name, st, v.status)
			}
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not start on port %d", v.name, v.port)
}

func get(c *http.Client, v *variant) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/leasing/renewals", v.port), nil)
	if v.token != "" {
		req.Header.Set("Authorization", "Bearer "+v.token)
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
