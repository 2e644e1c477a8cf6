package plugin

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile_EverySubdirective(t *testing.T) {
	t.Parallel()
	d := caddyfile.NewTestDispenser(`tokengate {
		key HS256 {env.JWT_SECRET}
		key RS256 /etc/keys/api.pem kid k2
		key HS256 {env.OLD_SECRET} retired
		jwks https://idp.example/.well-known/jwks.json
		issuer https://api.example
		audience leasing admin
		leeway 45s
		token_source header Authorization
		token_source cookie access_token
		token_source query access_token
		public /health /auth/*
		forward_claim sub X-User-Id
		forward_claim email X-User-Email
		realm leasing
		allow_weak_key
	}`)
	var g Gate
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Gate{
		Keys: []KeyConfig{
			{Alg: "HS256", Secret: "{env.JWT_SECRET}"},
			{Alg: "RS256", File: "/etc/keys/api.pem", KID: "k2"},
			{Alg: "HS256", Secret: "{env.OLD_SECRET}", Retired: true},
		},
		JWKSURLs: []string{"https://idp.example/.well-known/jwks.json"},
		Issuer:   "https://api.example",
		Audience: []string{"leasing", "admin"},
		Leeway:   durationPtr(45 * time.Second),
		TokenSources: []TokenSource{
			{From: "header", Name: "Authorization"},
			{From: "cookie", Name: "access_token"},
			{From: "query", Name: "access_token"},
		},
		Public:        []string{"/health", "/auth/*"},
		ForwardClaims: []ForwardClaim{{Claim: "sub", Header: "X-User-Id"}, {Claim: "email", Header: "X-User-Email"}},
		Realm:         "leasing",
		AllowWeakKey:  true,
	}
	if !reflect.DeepEqual(g, want) {
		got, _ := json.MarshalIndent(g, "", " ")
		t.Fatalf("parsed:\n%s", got)
	}
}

func TestUnmarshalCaddyfile_Errors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, input, want string
	}{
		{"typo", "tokengate {\n keys HS256 x\n}", "unrecognized subdirective 'keys'"},
		{"unknown", "tokengate {\n refresh_all\n}", "unrecognized subdirective 'refresh_all'"},
		{"inline argument", "tokengate HS256 {\n}", "wrong argument count"},
		{"key without material", "tokengate {\n key HS256\n}", "want `key <alg>"},
		{"key with stray word", "tokengate {\n key RS256 a.pem id k1\n}", "unexpected \"id\""},
		{"key with too many", "tokengate {\n key RS256 a.pem kid k1 extra\n}", "unexpected \"extra\""},
		{"key retired twice", "tokengate {\n key RS256 a.pem retired retired\n}", "unexpected \"retired\""},
		{"key kid without id", "tokengate {\n key RS256 a.pem kid\n}", "unexpected \"kid\""},
		{"jwks without url", "tokengate {\n jwks\n}", "wrong argument count"},
		{"issuer twice", "tokengate {\n issuer a b\n}", "wrong argument count"},
		{"issuer empty", "tokengate {\n issuer\n}", "wrong argument count"},
		{"audience empty", "tokengate {\n audience\n}", "wrong argument count"},
		{"bad leeway", "tokengate {\n leeway soon\n}", "leeway"},
		{"bad source", "tokengate {\n token_source body token\n}", "unknown source \"body\""},
		{"source without name", "tokengate {\n token_source cookie\n}", "token_source: want"},
		{"public empty", "tokengate {\n public\n}", "wrong argument count"},
		{"forward_claim one arg", "tokengate {\n forward_claim sub\n}", "forward_claim: want"},
		{"realm empty", "tokengate {\n realm\n}", "wrong argument count"},
		{"allow_weak_key with value", "tokengate {\n allow_weak_key yes\n}", "wrong argument count"},
	} {
		var g Gate
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), "Testfile:") {
			t.Errorf("%s: error %q carries no file:line", tc.name, err)
		}
	}
}

func TestUnmarshalCaddyfile_SessionAndStore(t *testing.T) {
	t.Parallel()
	d := caddyfile.NewTestDispenser(`tokengate {
		key HS256 {env.JWT_SECRET}
		session {
			login post /auth/verify-otp field token
			refresh /auth/refresh
			logout /auth/logout
			access_ttl 15m
			idle 12h
			lifetime 7d
			reuse_grace 5s
			cookie rt /auth app.example lax
			body_fields
			refresh_header X-Refresh-Token
			allowed_origins https://app.example https://admin.example
			access_token_header X-New-Token
		}
		store redis redis://:pw@10.0.0.1:6379/2 10.0.0.2:6379 {
			master_name leasing
			cluster
			username tg
			password {env.REDIS_PASSWORD}
			db 3
			tls
			prefix tg:
		}
	}`)
	var g Gate
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	wantSession := &SessionConfig{
		Login:       LoginRoute{Method: "POST", Path: "/auth/verify-otp", Field: "token"},
		RefreshPath: "/auth/refresh", LogoutPath: "/auth/logout",
		AccessTTL: caddy.Duration(15 * time.Minute), Idle: caddy.Duration(12 * time.Hour),
		Lifetime: caddy.Duration(7 * 24 * time.Hour), ReuseGrace: caddy.Duration(5 * time.Second),
		Cookie:     CookieConfig{Name: "rt", Path: "/auth", Domain: "app.example", SameSite: "lax"},
		BodyFields: true, RefreshHeader: "X-Refresh-Token",
		AllowedOrigins:    []string{"https://app.example", "https://admin.example"},
		AccessTokenHeader: "X-New-Token",
	}
	if !reflect.DeepEqual(g.Session, wantSession) {
		t.Errorf("session:\n got %+v\nwant %+v", g.Session, wantSession)
	}
	wantStore := &StoreConfig{Type: "redis", Addrs: []string{"redis://:pw@10.0.0.1:6379/2", "10.0.0.2:6379"},
		MasterName: "leasing", Cluster: true, Username: "tg", Password: "{env.REDIS_PASSWORD}", DB: 3, TLS: true, Prefix: "tg:"}
	if !reflect.DeepEqual(g.Store, wantStore) {
		t.Errorf("store:\n got %+v\nwant %+v", g.Store, wantStore)
	}

	for input, want := range map[string]StoreConfig{
		"store memory":                {Type: "memory"},
		"store file":                  {Type: "file"},
		"store file /var/lib/tg/s.db": {Type: "file", Path: "/var/lib/tg/s.db"},
	} {
		var g Gate
		if err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n" + input + "\n}")); err != nil {
			t.Errorf("%s: %v", input, err)
		} else if !reflect.DeepEqual(*g.Store, want) {
			t.Errorf("%s: %+v", input, *g.Store)
		}
	}
}

func TestUnmarshalCaddyfile_SessionAndStoreErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ input, want string }{
		{"session {\n refreshh /x\n}", "unrecognized session subdirective 'refreshh'"},
		{"session arg {\n}", "wrong argument count"},
		{"session {\n login /auth/verify-otp\n}", "login: want"},
		{"session {\n login POST /a fields x\n}", "login: want"},
		{"session {\n idle forever\n}", "idle"},
		{"session {\n cookie\n}", "cookie: want"},
		{"session {\n body_fields yes\n}", "wrong argument count"},
		{"session {\n allowed_origins\n}", "wrong argument count"},
		{"session {\n access_token_header\n}", "wrong argument count"},
		{"store", "store: want"},
		{"store postgres", "unknown type \"postgres\""},
		{"store memory extra", "wrong argument count"},
		{"store file a b", "wrong argument count"},
		{"store file {\n prefix x\n}", "takes no block"},
		{"store redis", "at least one address"},
		{"store redis 127.0.0.1:6379 {\n database 2\n}", "unrecognized redis store subdirective 'database'"},
		{"store redis 127.0.0.1:6379 {\n db two\n}", "is not a number"},
	} {
		var g Gate
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n" + tc.input + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.input, err, tc.want)
		}
	}
}

func durationPtr(d time.Duration) *caddy.Duration {
	c := caddy.Duration(d)
	return &c
}

func TestUnmarshalCaddyfile_Jobs(t *testing.T) {
	t.Parallel()
	d := caddyfile.NewTestDispenser(`tokengate {
		key HS256 {env.JWT_SECRET}
		job post /leasing/renewals/sync {
			status get /leasing/renewals/sync/{id}
			id_field id
			ttl 72h
			token_header X-Sync-Token
			body_field jobToken
			allow_expired_owner
			done_field status
			done_values completed failed
			done_after 2m
		}
		job POST /reports {
			status GET /reports/{id}/status
		}
	}`)
	var g Gate
	if err := g.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := []JobConfig{{
		Method: "POST", Path: "/leasing/renewals/sync", StatusMethod: "GET", StatusPath: "/leasing/renewals/sync/{id}",
		IDField: "id", TTL: caddy.Duration(72 * time.Hour), TokenHeader: "X-Sync-Token", BodyField: "jobToken",
		AllowExpiredOwner: true, DoneField: "status", DoneValues: []string{"completed", "failed"},
		DoneAfter: caddy.Duration(2 * time.Minute),
	}, {Method: "POST", Path: "/reports", StatusMethod: "GET", StatusPath: "/reports/{id}/status"}}
	if !reflect.DeepEqual(g.Jobs, want) {
		t.Fatalf("jobs:\n got %+v\nwant %+v", g.Jobs, want)
	}
	for _, tc := range []struct{ input, want string }{
		{"job /sync {\n}", "job: want"},
		{"job POST /sync {\n stats GET /s/{id}\n}", "unrecognized job subdirective 'stats'"},
		{"job POST /sync {\n status /s/{id}\n}", "status: want"},
		{"job POST /sync {\n ttl forever\n}", "ttl"},
		{"job POST /sync {\n done_values\n}", "wrong argument count"},
		{"job POST /sync {\n allow_expired_owner yes\n}", "wrong argument count"},
	} {
		var g Gate
		err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser("tokengate {\n" + tc.input + "\n}"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to contain %q", tc.input, err, tc.want)
		}
	}
}
