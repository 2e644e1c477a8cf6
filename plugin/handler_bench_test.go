package plugin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/plugin/store/storetest"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

func benchGate(b *testing.B) *Gate {
	g := &Gate{
		Keys:          []KeyConfig{{Alg: "HS256", Secret: strongSecret}},
		Public:        []string{"/health", "/auth/*"},
		ForwardClaims: []ForwardClaim{{Claim: "sub", Header: "X-User-Id"}, {Claim: "email", Header: "X-User-Email"}},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := g.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	// Outside a Caddy config the logger is a development one at debug
	// level; Caddy's default is info, where refusals are not logged.
	g.logger = zap.NewNop()
	return g
}

var okNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

func benchServe(b *testing.B, g *Gate, tok string) {
	req := httptest.NewRequest(http.MethodGet, "/leasing/renewals", nil)
	repl := caddy.NewReplacer()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	for b.Loop() {
		req.Header = http.Header{"Authorization": {"Bearer " + tok}}
		w := httptest.NewRecorder()
		if err := g.ServeHTTP(w, req, okNext); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeHTTP_ValidHS256 is the per-request cost tokengate adds to a
// request with a valid token (the next handler does nothing).
func BenchmarkServeHTTP_ValidHS256(b *testing.B) {
	g := benchGate(b)
	tok := tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims("u1", time.Now(), time.Hour), tokentest.HS256([]byte(strongSecret)))
	benchServe(b, g, tok)
}

// BenchmarkServeHTTP_RejectExpired is the cost of a 401 for an expired token.
func BenchmarkServeHTTP_RejectExpired(b *testing.B) {
	g := benchGate(b)
	tok := tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims("u1", time.Now().Add(-2*time.Hour), time.Hour), tokentest.HS256([]byte(strongSecret)))
	benchServe(b, g, tok)
}

// BenchmarkServeHTTP_InlineBridged is the steady cost of a client that
// keeps sending an expired token with its refresh cookie: after the first
// rotation each request is served from the bridge (one store read).
func BenchmarkServeHTTP_InlineBridged(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) *StoreConfig
	}{
		{"memory", func(*testing.B) *StoreConfig { return &StoreConfig{Type: "memory"} }},
		{"file", func(b *testing.B) *StoreConfig {
			return &StoreConfig{Type: "file", Path: filepath.Join(b.TempDir(), "s.db")}
		}},
		{"redis", func(b *testing.B) *StoreConfig {
			return &StoreConfig{Type: "redis", Addrs: []string{storetest.StartRedis(b).Addr}}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := &Gate{
				Keys:    []KeyConfig{{Alg: "HS256", Secret: strongSecret}},
				Store:   tc.store(b),
				Session: &SessionConfig{Login: LoginRoute{Path: "/login"}, RefreshPath: "/refresh"},
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			b.Cleanup(cancel)
			if err := g.Provision(ctx); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = g.Cleanup() })
			g.logger = zap.NewNop()
			old := tokentest.Build(tokentest.Header("HS256", ""), tokentest.Claims("u1", time.Now().Add(-2*time.Hour), time.Hour),
				tokentest.HS256([]byte(strongSecret)))
			claims, _ := g.verifier.Verify(context.Background(), old)
			grant, err := g.sessions.Open(context.Background(), claims)
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/leasing/renewals", nil)
			req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
			b.ReportAllocs()
			for b.Loop() {
				req.Header = http.Header{"Authorization": {"Bearer " + old}, "Cookie": {"tg_refresh=" + grant.RefreshToken}}
				w := httptest.NewRecorder()
				if err := g.ServeHTTP(w, req, okNext); err != nil || w.Code != http.StatusOK {
					b.Fatalf("%d %v %s", w.Code, err, w.Body)
				}
			}
		})
	}
}
