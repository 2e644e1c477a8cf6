package plugin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile: any Caddyfile text parses or fails with an error;
// it never panics.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"tokengate {\n key HS256 {env.JWT_SECRET}\n public /health\n}",
		"tokengate {\n key RS256 a.pem kid k1 retired\n session {\n login POST /l field t\n refresh /r\n cookie c / d lax\n }\n store redis redis://h:1/0 {\n db 2\n }\n}",
		"tokengate {\n job POST /sync {\n status GET /sync/{id}\n done_values a b\n }\n}",
		"tokengate {\n leeway 7d\n token_source cookie a\n forward_claim sub X\n}",
		"tokengate {\n session {\n}\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var g Gate
		_ = g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}

// FuzzField: reading a field of a login or job answer never panics, and a
// field found is exactly what a JSON decoder finds there.
func FuzzField(f *testing.F) {
	for _, seed := range []string{`{"access_token":"ey.x.y"}`, `{"jobId":42}`, `{"jobId":"j"}`, `{"a":{"b":1}}`, `[1]`, `{"x":"\u0000"}`, `{`} {
		f.Add([]byte(seed), "jobId")
	}
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		got, ok := field(body, name)
		if !ok {
			return
		}
		var obj map[string]any
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		if d.Decode(&obj) != nil {
			t.Fatalf("field found in invalid JSON %q", body)
		}
		switch v := obj[name].(type) {
		case string:
			if v != got {
				t.Fatalf("field %q = %q, decoder says %q", name, got, v)
			}
		case json.Number:
			if v.String() != got {
				t.Fatalf("field %q = %q, decoder says %q", name, got, v)
			}
		default:
			t.Fatalf("field %q found for a %T", name, v)
		}
	})
}

// FuzzSpliceFields: splicing keeps the API's members and adds ours, or
// refuses; the result is always valid JSON.
func FuzzSpliceFields(f *testing.F) {
	for _, seed := range []string{`{"access_token":"t"}` + "\n", `{}`, ` { "a" : [1,2] } `, `{"refresh_token":"x"}`, `[]`, `"s"`} {
		f.Add([]byte(seed))
	}
	extra := []byte(`{"refresh_token":"r","refresh_expires_in":5}`)
	f.Fuzz(func(t *testing.T, body []byte) {
		out, ok := spliceFields(body, extra)
		if !ok {
			return
		}
		var before, after map[string]json.RawMessage
		if json.Unmarshal(body, &before) != nil {
			t.Fatalf("spliced into invalid JSON %q", body)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("splice produced invalid JSON %q from %q: %v", out, body, err)
		}
		if len(after) != len(before)+2 || string(after["refresh_token"]) != `"r"` {
			t.Fatalf("splice of %q gave %q", body, out)
		}
	})
}

// FuzzCredentials: the token and refresh-credential readers never panic on
// any Authorization, Cookie or refresh header.
func FuzzCredentials(f *testing.F) {
	for _, seed := range []string{"Bearer a.b.c", "bearer   x", "Basic Zm9v", "Bearer", "", "tg_refresh=abc; other=1", "tg_refresh=\"q\""} {
		f.Add(seed, seed)
	}
	g := &Gate{
		sources: []TokenSource{{From: "header", Name: "Authorization"}, {From: "cookie", Name: "at"}},
		Session: &SessionConfig{RefreshHeader: "X-Refresh-Token", Cookie: CookieConfig{Name: "tg_refresh"}},
	}
	f.Fuzz(func(t *testing.T, auth, cookie string) {
		r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		r.Header.Set("Authorization", auth)
		r.Header.Set("Cookie", cookie)
		r.Header.Set("X-Refresh-Token", auth)
		tok, err := g.extract(r)
		if err == nil && len(auth) > 0 && strings.HasPrefix(strings.ToLower(auth), "bearer ") && tok != strings.TrimSpace(auth[7:]) {
			t.Fatalf("bearer %q read as %q", auth, tok)
		}
		g.inlineCredential(r)
		r.Body = http.NoBody
		_, _, _ = g.refreshCredential(r)
	})
}
