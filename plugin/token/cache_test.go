package token_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/token"
)

func TestCache_ReusesVerificationOnlyForTheSameToken(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	now := f.Now
	v.Now = func() time.Time { return now }
	v.Cache = token.NewCache(100, time.Minute)
	ctx := context.Background()
	raw := f.HS(f.Claims("user-1", 10*time.Minute))

	first, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Verify(ctx, raw)
	if err != nil || again != first {
		t.Fatalf("second verification: %v, same claims %v; want a cache hit", err, again == first)
	}
	tampered := raw[:len(raw)-2] + "AA"
	if raw[len(raw)-2:] == "AA" {
		tampered = raw[:len(raw)-2] + "AQ"
	}
	if _, err := v.Verify(ctx, tampered); err == nil {
		t.Fatal("a token differing from a cached one by its last characters was accepted")
	}

	now = now.Add(2 * time.Minute) // past MaxAge, before exp: verified afresh
	again, err = v.Verify(ctx, raw)
	if err != nil || again == first {
		t.Fatalf("after MaxAge: %v, same claims %v; want a fresh verification", err, again == first)
	}

	now = now.Add(10 * time.Minute) // past exp + leeway
	_, err = v.Verify(ctx, raw)
	var te *token.Error
	if !errors.As(err, &te) || te.Reason != token.ReasonExpired {
		t.Fatalf("cached token after expiry: %v, want expired", err)
	}
}

func TestCache_IsBounded(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	v.Cache = token.NewCache(8, time.Minute)
	for i := range 50 {
		if _, err := v.Verify(context.Background(), f.HS(f.Claims(fmt.Sprint("user-", i), time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Cache.Len(); n > 8 || n == 0 {
		t.Fatalf("cache holds %d tokens, bound is 8", n)
	}
}

func TestCache_NeverHoldsRefusedTokens(t *testing.T) {
	t.Parallel()
	f, v := fixture(t)
	v.Cache = token.NewCache(100, time.Minute)
	for _, c := range f.Cases() {
		_, _ = v.Verify(context.Background(), c.Token)
	}
	valid := 0
	for _, c := range f.Cases() {
		if c.Reason == "" {
			valid++
		}
	}
	if n := v.Cache.Len(); n != valid {
		t.Fatalf("cache holds %d tokens, want the %d valid ones", n, valid)
	}
}

func BenchmarkVerify_HS256Cached(b *testing.B) {
	f, v := fixture(b)
	v.Now = nil
	v.Cache = token.NewCache(1000, time.Minute)
	raw := f.HS(f.Claims("user-1", time.Hour))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
