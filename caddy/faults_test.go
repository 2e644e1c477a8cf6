package caddy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokengate/tokengate/examples/leasing-api/leasing"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// hammer sends GETs with a valid token from workers until stop is closed,
// and counts answers that were not 200.
type hammer struct {
	ok, failed, retried atomic.Int64
	firstErr            atomic.Value
	wg                  sync.WaitGroup
	stop                chan struct{}
}

func startHammer(s *site, path, token string, workers int, keepAlive bool) *hammer {
	h := &hammer{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
	for range workers {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for {
				select {
				case <-h.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, s.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := client.Do(req)
				if err != nil {
					// A connection closed under the request, as browsers and
					// HTTP clients do, is retried once for an idempotent GET.
					h.retried.Add(1)
					res, err = client.Do(req)
				}
				if err == nil {
					res.Body.Close()
					if res.StatusCode == http.StatusOK {
						h.ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", res.StatusCode)
				}
				h.failed.Add(1)
				h.firstErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	return h
}

func (h *hammer) finish(t *testing.T) (ok int64) {
	t.Helper()
	close(h.stop)
	h.wg.Wait()
	if n := h.failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests with a valid token failed; first: %v", n, n+h.ok.Load(), h.firstErr.Load())
	}
	if h.ok.Load() == 0 {
		t.Fatal("the load sent nothing")
	}
	t.Logf("%d requests, %d retried once after a closed connection", h.ok.Load(), h.retried.Load())
	return h.ok.Load()
}

// TestFault_RedisKilledUnderLoad: valid tokens never fail while Redis dies
// and comes back; refresh answers 503 meanwhile and recovers; the family is
// not forked.
func TestFault_RedisKilledUnderLoad(t *testing.T) {
	srv := storetest.StartDurableRedis(t)
	up := newUpstream(t, leasing.Config{})
	s := sessionSite(t, up, "store redis "+srv.Addr, "body_fields")
	access, refresh, _ := s.loginSession("fault.redis@example.com")
	h := startHammer(s, "/leasing/renewals", access, 4, true)

	time.Sleep(300 * time.Millisecond)
	srv.Stop()
	time.Sleep(300 * time.Millisecond)
	down := s.refreshWith(refresh)
	if down.status != http.StatusServiceUnavailable {
		t.Fatalf("refresh with Redis down: %d %s", down.status, down.body)
	}
	srv.Start()
	time.Sleep(300 * time.Millisecond)
	ok := h.finish(t)
	t.Logf("%d requests with a valid token, 0 failed, across a Redis outage", ok)

	up1 := s.refreshWith(refresh)
	if up1.status != http.StatusOK {
		t.Fatalf("refresh after Redis came back: %d %s", up1.status, up1.body)
	}
	next := up1.json(t)["refresh_token"].(string)
	if r := s.refreshWith(next); r.status != http.StatusOK {
		t.Fatalf("the successor after the outage: %d %s (forked or lost family)", r.status, r.body)
	}
	if g := generation(t, srv.Client(), refresh); g != 2 {
		t.Fatalf("%d rotations, want exactly the 2 that answered 200", g)
	}
}

// TestFault_ReloadUnderLoad: five config reloads while requests flow; none
// fails and the counters carry on.
func TestFault_ReloadUnderLoad(t *testing.T) {
	up := newUpstream(t, leasing.Config{})
	s := apiSite(t, up)
	access := s.login("fault.reload@example.com")
	before := metricValue(scrape(t), "caddy_tokengate_decisions_total", "decision", "allowed")
	// A reload closes a few connections under requests racing the old
	// server's shutdown (EOF); plain reverse_proxy does the same on Caddy
	// 2.11 (docs/RELIABILITY.md). The load retries those once, as clients
	// do for GETs; every answer must then be a 200.
	h := startHammer(s, "/leasing/renewals", access, 4, true)
	port := strings.TrimPrefix(s.base, "http://127.0.0.1:")
	for i := range 5 {
		time.Sleep(150 * time.Millisecond)
		status, body := loadRaw(t, globalOptions()+fmt.Sprintf(`http://127.0.0.1:%s {
	tokengate {
		key HS256 {env.TG_IT_SECRET}
		public /health /auth/send-otp /auth/verify-otp /reload-%d
		forward_claim sub X-User-Id
	}
	reverse_proxy %s
}`, port, i, up.URL))
		if status != http.StatusOK {
			t.Fatalf("reload %d: %d %s", i, status, body)
		}
	}
	time.Sleep(150 * time.Millisecond)
	ok := h.finish(t)
	after := metricValue(scrape(t), "caddy_tokengate_decisions_total", "decision", "allowed")
	if after-before != float64(ok) {
		t.Fatalf("decisions{allowed} grew by %v over %d allowed requests: counters were reset or lost", after-before, ok)
	}
	t.Logf("%d requests across 5 reloads, 0 failed", ok)
}

// TestFault_UpstreamDown: 502 while the API is down, and the session is
// unharmed: the same expired token and cookie work once it is back.
func TestFault_UpstreamDown(t *testing.T) {
	up := newUpstream(t, leasing.Config{AccessTTL: loginTTL})
	target := up.URL
	s := inlineSite(t, up, "store memory", "1m")
	old, refresh := expiredSession(t, s, "fault.upstream@example.com")
	up.Close()
	res := s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusBadGateway {
		t.Fatalf("upstream down: %d %s", res.status, res.body)
	}
	// The API comes back on the same address.
	back := newUpstreamAt(t, strings.TrimPrefix(target, "http://"), leasing.Config{AccessTTL: loginTTL})
	res = s.do(http.MethodGet, "/leasing/renewals", nil, "Authorization", "Bearer "+old, "Cookie", "tg_refresh="+refresh)
	if res.status != http.StatusOK {
		t.Fatalf("after the API came back: %d %s", res.status, res.body)
	}
	if _, hits := back.seen(); hits != 1 {
		t.Fatalf("the API saw %d requests", hits)
	}
}

// TestFault_SlowLoginRetriedOpensOneSession: the client gives up on a slow
// login and retries; only the answer that reached a client opens a session.
func TestFault_SlowLoginRetriedOpensOneSession(t *testing.T) {
	api := leasing.New(leasing.Config{Secret: apiSecret})
	var calls atomic.Int64
	slow := newUpstreamHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/verify-otp" && calls.Add(1) == 1 {
			time.Sleep(800 * time.Millisecond)
		}
		api.ServeHTTP(w, r)
	}))
	s := sessionSite(t, &upstream{Server: slow}, "store memory", "")
	before := metricValue(scrape(t), "caddy_tokengate_sessions_started_total")

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/auth/verify-otp",
		strings.NewReader(`{"email":"slow@example.com","otp":"123456"}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the slow login answered within the client's timeout")
	}
	cancel()
	s.loginSession("slow@example.com") // the retry
	time.Sleep(time.Second)            // the first answer arrives upstream-side
	if d := metricValue(scrape(t), "caddy_tokengate_sessions_started_total") - before; d != 1 {
		t.Fatalf("%v sessions opened for one login the client received", d)
	}
}
