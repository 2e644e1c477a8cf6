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
		},
		JWKSURLs: []string{"https://idp.example/.well-known/jwks.json"},
		Issuer:   "https://api.example",
		Audience: []string{"leasing", "admin"},
		Leeway:   caddy.Duration(45 * time.Second),
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
		{"key with stray word", "tokengate {\n key RS256 a.pem id k1\n}", "expected `kid <id>`"},
		{"key with too many", "tokengate {\n key RS256 a.pem kid k1 extra\n}", "want `key <alg>"},
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
