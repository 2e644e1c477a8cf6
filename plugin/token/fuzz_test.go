package token_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

// fuzzNow is the fuzz targets' clock (2030-03-17).
var fuzzNow = time.Unix(1_900_000_000, 0)

// FuzzVerify: no input panics the verifier, every refusal is a *token.Error
// with a known reason, and nothing but the fixture's valid tokens is
// accepted: an accepted input must be byte-identical to a token the test
// signed (a forgery would need the key).
func FuzzVerify(f *testing.F) {
	fx, v := fixture(f)
	// A fixed clock: fuzz workers are separate processes that run this
	// function again, and must build byte-identical HS256 tokens to know
	// the seeds they are handed. (RS/ES keys differ per process, so those
	// seeds are refused there, never wrongly accepted.)
	fx.Now = fuzzNow
	valid := map[string]bool{}
	for _, c := range fx.Cases() {
		f.Add(c.Token)
		if c.Reason == "" {
			valid[c.Token] = true
		}
	}
	known := map[token.Reason]bool{}
	for _, r := range token.Reasons {
		known[r] = true
	}
	v.Now = func() time.Time { return fuzzNow }
	f.Fuzz(func(t *testing.T, raw string) {
		claims, err := v.Verify(context.Background(), raw)
		if err == nil {
			if !valid[raw] {
				t.Fatalf("accepted a token the test never signed: %q", raw)
			}
			return
		}
		var te *token.Error
		if !errors.As(err, &te) || !known[te.Reason] {
			t.Fatalf("refusal %v is not a known reason", err)
		}
		if claims != nil && te.Reason != token.ReasonExpired {
			t.Fatalf("claims returned with a %s refusal", te.Reason)
		}
	})
}

// FuzzVerifyClaims signs arbitrary payloads with the real key: whatever the
// JSON, verification never panics and exp is always enforced.
func FuzzVerifyClaims(f *testing.F) {
	fx, v := fixture(f)
	fx.Now = fuzzNow
	v.Now = func() time.Time { return fuzzNow }
	for _, p := range []string{`{"exp":9999999999}`, `{"exp":"1"}`, `{"exp":1e400}`, `{"exp":-1}`, `{"aud":[1]}`, `[]`, `null`, `{"exp":9999999999,"sub":{"a":1}}`} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		in := tokentest.Segment(tokentest.Header("HS256", "")) + "." + b64(payload)
		raw := in + "." + b64(tokentest.HS256(fx.Secret)(in))
		claims, err := v.Verify(context.Background(), raw)
		if err == nil && (claims.ExpiresAt.IsZero() || !fx.Now.Before(claims.ExpiresAt.Add(token.DefaultLeeway))) {
			t.Fatalf("accepted without a live exp: %s", payload)
		}
		if err == nil {
			for _, name := range []string{"sub", "email", "exp", "x"} {
				claims.Text(name)
			}
		}
	})
}
