package session_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

func newJobs(t *testing.T, e *env) *session.Jobs {
	t.Helper()
	j, err := session.NewJobs(e.store, e.m.Keys, token.DefaultLeeway)
	if err != nil {
		t.Fatal(err)
	}
	j.Now = e.clock.Now
	j.Verifier.Now = e.clock.Now
	return j
}

const scope = "GET /leasing/renewals/sync/{id}"

func TestJobs_TokenOpensOnlyItsOwnJob(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	j := newJobs(t, e)
	_, owner, _ := e.expiredLogin(t, "user-1", time.Hour)
	jt, err := j.Start(context.Background(), "sync", scope, "job_1", owner, 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Add(30 * time.Hour) // far past the owner's access token
	if err := j.CheckToken(context.Background(), jt.Token, scope, "job_1"); err != nil {
		t.Fatalf("own job: %v", err)
	}
	if err := j.CheckToken(context.Background(), jt.Token, scope, "job_2"); !errors.Is(err, session.ErrWrongJob) {
		t.Fatalf("another job: %v", err)
	}
	if err := j.CheckToken(context.Background(), jt.Token, "GET /reports/{id}", "job_1"); !errors.Is(err, session.ErrWrongJob) {
		t.Fatalf("another kind of job: %v", err)
	}
	tampered := jt.Token[:len(jt.Token)-3] + "AAA"
	var te *token.Error
	if err := j.CheckToken(context.Background(), tampered, scope, "job_1"); !errors.As(err, &te) {
		t.Fatalf("tampered job token: %v", err)
	}
	// The API's key cannot verify a job token, and the access verifier
	// refuses its kind before even trying.
	if _, err := e.v.Verify(context.Background(), jt.Token); !errors.As(err, &te) || te.Reason != token.ReasonWrongKind {
		t.Fatalf("job token as an access token: %v", err)
	}
	noTyp := *e.v
	noTyp.RejectTyp = nil
	if _, err := noTyp.Verify(context.Background(), jt.Token); !errors.As(err, &te) || te.Reason != token.ReasonUnknownKID {
		t.Fatalf("job token under the API's keys: %v, want unknown_kid", err)
	}
	e.clock.Add(49 * time.Hour)
	if err := j.CheckToken(context.Background(), jt.Token, scope, "job_1"); !errors.As(err, &te) || te.Reason != token.ReasonExpired {
		t.Fatalf("job token after its ttl: %v", err)
	}
}

func TestJobs_AccessTokenIsNotAJobToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	j := newJobs(t, e)
	raw, _, _ := e.expiredLogin(t, "user-1", 24*time.Hour)
	var te *token.Error
	if err := j.CheckToken(context.Background(), raw, scope, "job_1"); !errors.As(err, &te) || te.Reason != token.ReasonWrongKind {
		t.Fatalf("access token where a job token belongs: %v", err)
	}
}

func TestJobs_GrantMintsForTheOwnerAndEndsWhenDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, session.Config{})
	j := newJobs(t, e)
	_, owner, _ := e.expiredLogin(t, "user-1", time.Hour)
	if _, err := j.Start(context.Background(), "sync", scope, "job_9", owner, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	g, err := j.Grant(context.Background(), "sync", "job_9")
	if err != nil || g.Subject != "user-1" {
		t.Fatalf("grant: %+v %v", g, err)
	}
	minted, mintedClaims, err := j.Mint(g)
	if err != nil {
		t.Fatal(err)
	}
	if mintedClaims.Subject != "user-1" || mintedClaims.Key() == nil {
		t.Fatalf("claims returned with the minted token: %+v", mintedClaims)
	}
	c, err := e.v.Verify(context.Background(), minted)
	if err != nil || c.Subject != "user-1" {
		t.Fatalf("minted status token: %v", err)
	}
	if life := c.ExpiresAt.Sub(e.clock.Now()); life > session.JobStatusTTL+time.Second {
		t.Fatalf("status token lives %v", life)
	}
	if _, err := j.Grant(context.Background(), "other-kind", "job_9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant under another kind: %v", err)
	}
	if err := j.Done(context.Background(), "sync", "job_9", time.Minute); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Minute)
	if _, err := j.Grant(context.Background(), "sync", "job_9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant a minute after done: %v", err)
	}
}
