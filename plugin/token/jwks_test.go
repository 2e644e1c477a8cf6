package token_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tokengate/tokengate/plugin/token"
	"github.com/tokengate/tokengate/plugin/token/tokentest"
)

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestVerify_JWKSPublishedKeys(t *testing.T) {
	t.Parallel()
	keys := tokentest.NewKeys(t)
	ecx, ecy := make([]byte, 32), make([]byte, 32)
	keys.EC.X.FillBytes(ecx)
	keys.EC.Y.FillBytes(ecy)
	jwks := fmt.Sprintf(`{"keys":[
		{"kty":"RSA","kid":"j1","alg":"RS256","use":"sig","n":%q,"e":%q},
		{"kty":"EC","kid":"j2","crv":"P-256","x":%q,"y":%q},
		{"kty":"oct","kid":"sym","k":%q}
	]}`, b64u(keys.RSA.N.Bytes()), b64u(big.NewInt(int64(keys.RSA.E)).Bytes()), b64u(ecx), b64u(ecy), b64u(testSecret))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(jwks))
	}))
	t.Cleanup(srv.Close)

	ks, err := token.NewKeySet(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := ks.WithJWKS(ctx, []string{srv.URL}, time.Hour); err != nil {
		t.Fatal(err)
	}
	v := &token.Verifier{Keys: ks, Leeway: token.DefaultLeeway}
	claims := tokentest.Claims("user-1", time.Now(), time.Hour)
	rs := tokentest.With(jwt.SigningMethodRS256, keys.RSA)

	for _, tc := range []struct {
		name string
		tok  string
		want token.Reason
	}{
		{"RS256 by published kid", tokentest.Build(tokentest.Header("RS256", "j1"), claims, rs), ""},
		{"RS256 without kid", tokentest.Build(tokentest.Header("RS256", ""), claims, rs), ""},
		{"ES256 key without alg, bound by key type", tokentest.Build(tokentest.Header("ES256", "j2"), claims, tokentest.With(jwt.SigningMethodES256, keys.EC)), ""},
		{"PS256 against an RS256 JWK", tokentest.Build(tokentest.Header("PS256", "j1"), claims, tokentest.With(jwt.SigningMethodPS256, keys.RSA)), token.ReasonUnsupportedAlg},
		{"HS256 against the RSA JWK", tokentest.Build(tokentest.Header("HS256", "j1"), claims, tokentest.HS256(keys.RSAPub)), token.ReasonUnsupportedAlg},
		{"HS256 with a published symmetric key", tokentest.Build(tokentest.Header("HS256", "sym"), claims, tokentest.HS256(testSecret)), token.ReasonUnsupportedAlg},
		{"HS256 without kid", tokentest.Build(tokentest.Header("HS256", ""), claims, tokentest.HS256(testSecret)), token.ReasonUnsupportedAlg},
		{"unknown kid", tokentest.Build(tokentest.Header("RS256", "j9"), claims, rs), token.ReasonUnknownKID},
		{"signed by another key", tokentest.Build(tokentest.Header("RS256", "j1"), claims, tokentest.With(jwt.SigningMethodRS256, tokentest.NewKeys(t).RSA)), token.ReasonBadSignature},
	} {
		_, err := v.Verify(context.Background(), tc.tok)
		var te *token.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.As(err, &te) || te.Reason != tc.want):
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want)
		}
	}
}

func b64(b []byte) string { return b64u(b) }
