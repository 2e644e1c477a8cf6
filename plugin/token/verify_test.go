package token_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

var testSecret = []byte("0f3a9c1e7b5d2a8c4e6f1b3d5a7c9e0f2b4d6a8c")

func fixture(t testing.TB) (tokentest.Fixture, *token.Verifier) {
	t.Helper()
	f := tokentest.Fixture{
		Secret: testSecret, Keys: tokentest.NewKeys(t),
		Issuer: "https://api.example", Audience: "leasing", Now: time.Now(),
	}
	return f, verifierFor(t, f)
}

func verifierFor(t testing.TB, f tokentest.Fixture) *token.Verifier {
	t.Helper()
	hs, err := token.ParseKey("HS256", string(f.Secret), "")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := token.ParseKey("RS256", string(f.Keys.RSAPub), "rs1")
	if err != nil {
		t.Fatal(err)
	}
	es, err := token.ParseKey("ES256", string(f.Keys.ECPub), "es1")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := token.NewKeySet([]*token.Key{hs, rs, es})
	if err != nil {
		t.Fatal(err)
	}
	return &token.Verifier{
		Keys: ks, Issuer: f.Issuer, Audience: []string{f.Audience},
		Leeway: token.DefaultLeeway, Now: func() time.Time { return f.Now },
		RejectTyp: []string{token.JobTokenTyp},
	}
}

func TestVerify_Cases(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	for _, c := range f.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			claims, err := v.Verify(context.Background(), c.Token)
			if c.Reason == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				if claims.Subject != "user-1" {
					t.Fatalf("subject = %q", claims.Subject)
				}
				return
			}
			var te *token.Error
			if !errors.As(err, &te) {
				t.Fatalf("want refusal %q, got err=%v", c.Reason, err)
			}
			if te.Reason != c.Reason {
				t.Fatalf("reason = %q (%s), want %q", te.Reason, te.Detail, c.Reason)
			}
			if c.Reason != token.ReasonExpired && claims != nil {
				t.Fatalf("claims of a %s token were returned", c.Reason)
			}
			if strings.Contains(te.Error(), c.Token) && c.Token != "" {
				t.Fatal("error quotes the token")
			}
		})
	}
}

func TestVerify_ExpiredReturnsVerifiedClaims(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	c := f.Claims("user-9", -time.Hour)
	claims, err := v.Verify(context.Background(), f.HS(c))
	var te *token.Error
	if !errors.As(err, &te) || te.Reason != token.ReasonExpired {
		t.Fatalf("want expired, got %v", err)
	}
	if claims == nil || claims.Subject != "user-9" {
		t.Fatalf("claims = %+v", claims)
	}
	if got := f.Now.Sub(claims.ExpiresAt); got < 59*time.Minute || got > 61*time.Minute {
		t.Fatalf("expired %s ago, want about 1h", got)
	}
}

func TestVerify_MissingToken(t *testing.T) {
	t.Parallel()
	_, v := fixture(t)
	_, err := v.Verify(context.Background(), "")
	var te *token.Error
	if !errors.As(err, &te) || te.Reason != token.ReasonMissing {
		t.Fatalf("want missing, got %v", err)
	}
}

func TestVerify_LeewayBoundsExpiry(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	for _, tc := range []struct {
		name    string
		expAgo  time.Duration
		expired bool
	}{
		{"inside leeway", token.DefaultLeeway - time.Second, false},
		{"at leeway", token.DefaultLeeway, true},
		{"past leeway", token.DefaultLeeway + time.Second, true},
	} {
		c := f.Claims("u", time.Hour)
		c["exp"] = f.Now.Add(-tc.expAgo).Unix()
		_, err := v.Verify(context.Background(), f.HS(c))
		if (err != nil) != tc.expired {
			t.Errorf("%s: err = %v, want expired=%v", tc.name, err, tc.expired)
		}
	}
}

func TestClaims_Text(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	c := f.Claims("user-1", time.Hour)
	c["roles"] = []string{"admin", "ops"}
	c["level"] = 3
	c["active"] = true
	c["org"] = map[string]any{"id": "o1"}
	claims, err := v.Verify(context.Background(), f.HS(c))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"email": "user-1@example.com", "roles": "admin,ops", "level": "3",
		"active": "true", "org": `{"id":"o1"}`, "sub": "user-1",
	} {
		if got, ok := claims.Text(name); !ok || got != want {
			t.Errorf("Text(%q) = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := claims.Text("absent"); ok {
		t.Error("absent claim reported present")
	}
}

func TestCheckHMACSecret(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		secret string
		weak   bool
	}{
		{"jatingupta9120", true}, // the seed's own secret: 14 bytes
		{"secret", true},
		{strings.Repeat("a", 64), true},
		{"0123456789abcdef0123456789abcdef", true},
		{"your-super-secret-jwt-key-change-this-in-production", true},
		{string(testSecret), false},
		{"Zx8#kP2$wQ9!mN4&vB7*cR1^tY6@hJ3%", false},
	} {
		err := token.CheckHMACSecret([]byte(tc.secret))
		if (err != nil) != tc.weak {
			t.Errorf("CheckHMACSecret(len %d) = %v, want weak=%v", len(tc.secret), err, tc.weak)
		}
		if err != nil && (!errors.Is(err, token.ErrWeakSecret) || (len(tc.secret) > 8 && strings.Contains(err.Error(), tc.secret))) {
			t.Errorf("error %q must wrap ErrWeakSecret and not quote the secret", err)
		}
	}
}

func TestParseKey_Refusals(t *testing.T) {
	t.Parallel()
	keys := tokentest.NewKeys(t)
	for _, tc := range []struct {
		name, alg, material, want string
	}{
		{"alg none", "none", "x", "not supported"},
		{"unknown alg", "HS1024", "x", "not supported"},
		{"empty secret", "HS256", "", "secret is empty"},
		{"missing file", "RS256", "/nonexistent/key.pem", "reading key file"},
		{"RSA key for ES256", "ES256", string(keys.RSAPub), "ES256 key"},
		{"EC key for RS256", "RS256", string(keys.ECPub), "RS256 key"},
		{"EC key for EdDSA", "EdDSA", string(keys.ECPub), "EdDSA key"},
	} {
		_, err := token.ParseKey(tc.alg, tc.material, "")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
	if _, err := token.ParseKey("RS256", string(keys.RSAPriv), ""); err != nil {
		t.Errorf("private RSA key: %v", err)
	}
	if k, _ := token.ParseKey("EdDSA", string(keys.EdPub), ""); k == nil || k.CanSign() {
		t.Error("public Ed25519 key must parse and not sign")
	}
}

func TestNewKeySet_DuplicateKID(t *testing.T) {
	t.Parallel()
	a, _ := token.ParseKey("HS256", string(testSecret), "k")
	b, _ := token.ParseKey("HS384", string(testSecret), "k")
	if _, err := token.NewKeySet([]*token.Key{a, b}); err == nil {
		t.Fatal("two keys with one kid accepted")
	}
}

func BenchmarkVerify_HS256(b *testing.B) {
	f, v := fixture(b)
	v.Now = nil
	raw := f.HS(f.Claims("user-1", time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify_RS256(b *testing.B) {
	f, v := fixture(b)
	v.Now = nil
	raw := tokentest.Build(tokentest.Header("RS256", "rs1"), f.Claims("user-1", time.Hour),
		tokentest.With(jwt.SigningMethodRS256, f.Keys.RSA))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify_RejectBadSignature(b *testing.B) {
	f, v := fixture(b)
	v.Now = nil
	raw := f.HS(f.Claims("user-1", time.Hour))
	raw = raw[:len(raw)-2] + "AA"
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err == nil {
			b.Fatal("accepted")
		}
	}
}
