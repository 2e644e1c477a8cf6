package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

const strongSecret = "0f3a9c1e7b5d2a8c4e6f1b3d5a7c9e0f2b4d6a8c"

func provision(t *testing.T, g *Gate) error {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := g.Provision(ctx); err != nil {
		return err
	}
	return g.Validate()
}

func TestProvision_WeakSecretRefusesToStart(t *testing.T) {
	t.Setenv("TG_TEST_SECRET", "jatingupta9120")
	g := &Gate{Keys: []KeyConfig{{Alg: "HS256", Secret: "{env.TG_TEST_SECRET}"}}}
	err := provision(t, g)
	if err == nil {
		t.Fatal("weak secret accepted")
	}
	msg := err.Error()
	for _, want := range []string{"weak HMAC secret", "14 bytes, at least 32", "openssl rand", "allow_weak_key"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "jatingupta9120") {
		t.Error("error quotes the secret")
	}
}

func TestProvision_AllowWeakKeyStartsAndCountsInGauge(t *testing.T) {
	before := testutil.ToFloat64(collectors.WeakKey)
	g := &Gate{Keys: []KeyConfig{{Alg: "HS256", Secret: "jatingupta9120"}}, AllowWeakKey: true}
	if err := provision(t, g); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(collectors.WeakKey); got != before+1 {
		t.Fatalf("weak_key gauge = %v, want %v", got, before+1)
	}
	if err := g.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(collectors.WeakKey); got != before {
		t.Fatalf("after cleanup weak_key gauge = %v, want %v", got, before)
	}
}

func TestProvision_Defaults(t *testing.T) {
	t.Parallel()
	g := &Gate{Keys: []KeyConfig{{Alg: "HS256", Secret: strongSecret}}}
	if err := provision(t, g); err != nil {
		t.Fatal(err)
	}
	if time.Duration(*g.Leeway) != 30*time.Second || g.Realm != "tokengate" {
		t.Fatalf("leeway %v realm %q", time.Duration(*g.Leeway), g.Realm)
	}
	if len(g.sources) != 1 || g.sources[0] != (TokenSource{From: "header", Name: "Authorization"}) {
		t.Fatalf("sources = %+v", g.sources)
	}
}

func TestProvisionValidate_ConfigErrors(t *testing.T) {
	t.Parallel()
	key := []KeyConfig{{Alg: "HS256", Secret: strongSecret}}
	for _, tc := range []struct {
		name string
		g    Gate
		want string
	}{
		{"no key", Gate{}, "no key"},
		{"empty env secret", Gate{Keys: []KeyConfig{{Alg: "HS256", Secret: "{env.TG_TEST_UNSET_VAR}"}}}, "secret is empty"},
		{"alg none", Gate{Keys: []KeyConfig{{Alg: "none", Secret: strongSecret}}}, "not supported"},
		{"missing pem", Gate{Keys: []KeyConfig{{Alg: "RS256", File: "/nonexistent.pem"}}}, "reading key file"},
		{"duplicate kid", Gate{Keys: []KeyConfig{{Alg: "HS256", Secret: strongSecret, KID: "a"}, {Alg: "HS384", Secret: strongSecret, KID: "a"}}}, "share kid"},
		{"leeway over cap", Gate{Keys: key, Leeway: durationPtr(time.Hour)}, "leeway 1h0m0s is outside"},
		{"bad source", Gate{Keys: key, TokenSources: []TokenSource{{From: "body", Name: "t"}}}, "must be header, cookie or query"},
		{"source without name", Gate{Keys: key, TokenSources: []TokenSource{{From: "cookie"}}}, "a name is required"},
		{"bad header name", Gate{Keys: key, ForwardClaims: []ForwardClaim{{Claim: "sub", Header: "X User"}}}, "valid header name"},
		{"authorization header", Gate{Keys: key, ForwardClaims: []ForwardClaim{{Claim: "sub", Header: "authorization"}}}, "may not set"},
		{"quote in realm", Gate{Keys: key, Realm: `a"b`}, "realm may not contain"},
	} {
		g := tc.g
		err := provision(t, &g)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestProvisionValidate_SessionErrors(t *testing.T) {
	t.Parallel()
	key := []KeyConfig{{Alg: "HS256", Secret: strongSecret}}
	login := LoginRoute{Path: "/auth/verify-otp"}
	mem := &StoreConfig{Type: "memory"}
	keys := tokentest.NewKeys(t)
	for _, tc := range []struct {
		name string
		g    Gate
		want string
	}{
		{"no login", Gate{Keys: key, Store: mem, Session: &SessionConfig{RefreshPath: "/r"}}, "a login route is required"},
		{"no refresh", Gate{Keys: key, Store: mem, Session: &SessionConfig{Login: login}}, "a refresh route is required"},
		{"same paths", Gate{Keys: key, Store: mem, Session: &SessionConfig{Login: login, RefreshPath: "/auth/verify-otp"}}, "distinct paths"},
		{"verify-only key", Gate{Keys: []KeyConfig{{Alg: "RS256", File: string(keys.RSAPub)}}, Store: mem,
			Session: &SessionConfig{Login: login, RefreshPath: "/r"}}, "a signing key is required"},
		{"grace too long", Gate{Keys: key, Store: mem, Session: &SessionConfig{Login: login, RefreshPath: "/r", ReuseGrace: caddy.Duration(time.Hour)}}, "reuse_grace 1h0m0s"},
		{"idle over lifetime", Gate{Keys: key, Store: mem, Session: &SessionConfig{Login: login, RefreshPath: "/r",
			Idle: caddy.Duration(48 * time.Hour), Lifetime: caddy.Duration(time.Hour)}}, "idle 48h0m0s is longer"},
		{"bad same_site", Gate{Keys: key, Store: mem, Session: &SessionConfig{Login: login, RefreshPath: "/r", Cookie: CookieConfig{SameSite: "sometimes"}}}, "same_site"},
		{"bad store", Gate{Keys: key, Store: &StoreConfig{Type: "etcd"}, Session: &SessionConfig{Login: login, RefreshPath: "/r"}}, "store type \"etcd\""},
		{"redis without address", Gate{Keys: key, Store: &StoreConfig{Type: "redis"}, Session: &SessionConfig{Login: login, RefreshPath: "/r"}}, "no address"},
		{"bad redis url", Gate{Keys: key, Store: &StoreConfig{Type: "redis", Addrs: []string{"redis://h:p:x/zz"}}, Session: &SessionConfig{Login: login, RefreshPath: "/r"}}, "redis store address 1"},
	} {
		g := tc.g
		err := provision(t, &g)
		_ = g.Cleanup()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestProvisionValidate_JobErrors(t *testing.T) {
	t.Parallel()
	key := []KeyConfig{{Alg: "HS256", Secret: strongSecret}}
	mem := &StoreConfig{Type: "memory"}
	keys := tokentest.NewKeys(t)
	status := "/leasing/renewals/sync/{id}"
	for _, tc := range []struct {
		name string
		g    Gate
		want string
	}{
		{"no status", Gate{Keys: key, Store: mem, Jobs: []JobConfig{{Path: "/sync"}}}, "`status <METHOD> <path>` is required"},
		{"status without id", Gate{Keys: key, Store: mem, Jobs: []JobConfig{{Path: "/sync", StatusPath: "/sync/status"}}}, "{id} once"},
		{"start not a path", Gate{Keys: key, Store: mem, Jobs: []JobConfig{{Path: "sync", StatusPath: status}}}, "must be a path"},
		{"done field alone", Gate{Keys: key, Store: mem, Jobs: []JobConfig{{Path: "/sync", StatusPath: status, DoneField: "status"}}}, "go together"},
		{"bad header", Gate{Keys: key, Store: mem, Jobs: []JobConfig{{Path: "/sync", StatusPath: status, TokenHeader: "X Job"}}}, "not a header name"},
		{"verify-only key", Gate{Keys: []KeyConfig{{Alg: "RS256", File: string(keys.RSAPub)}}, Store: mem,
			Jobs: []JobConfig{{Path: "/sync", StatusPath: status}}}, "job: a signing key is required"},
	} {
		g := tc.g
		err := provision(t, &g)
		_ = g.Cleanup()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
