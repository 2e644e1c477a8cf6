package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// JobAudience is the aud of job tokens.
const JobAudience = "tokengate:job"

// JobStatusTTL is the lifetime of the access tokens minted for the API on a
// job status request: one poll's worth, never past the grant.
const JobStatusTTL = 5 * time.Minute

// Jobs records job grants and mints and checks job tokens. Job tokens are
// signed with a key derived from the API's key (token.Key.Derive), which
// the API does not know: it can never take one for an access token.
type Jobs struct {
	Store store.Store
	Keys  *token.KeySet
	// Key signs job tokens; Verifier checks them (typ JobTokenTyp,
	// audience JobAudience, Key only).
	Key      *token.Key
	Verifier *token.Verifier
	Now      func() time.Time
}

// NewJobs derives the job-token keys from the signing keys in keys: the
// first current one signs; retired ones still verify job tokens issued
// before a key rotation.
func NewJobs(st store.Store, keys *token.KeySet, leeway time.Duration) (*Jobs, error) {
	signers := keys.Signers()
	if keys.FirstSigner() == nil {
		return nil, token.ErrCannotSign
	}
	derived := make([]*token.Key, 0, len(signers))
	for _, s := range signers {
		k, err := s.Derive("tokengate job token v1")
		if err != nil {
			return nil, err
		}
		derived = append(derived, k)
	}
	ks, err := token.NewKeySet(derived)
	if err != nil {
		return nil, err
	}
	return &Jobs{Store: st, Keys: keys, Key: derived[0], Verifier: &token.Verifier{
		Keys: ks, Audience: []string{JobAudience}, Leeway: leeway, RequireTyp: token.JobTokenTyp,
	}}, nil
}

func (j *Jobs) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

// GrantID names the grant of job id of a kind (the job-start route).
func GrantID(kind, jobID string) string {
	h := sha256.Sum256([]byte(kind + "\x00" + jobID))
	return hex.EncodeToString(h[:16])
}

// JobToken is a job token with its claims.
type JobToken struct {
	Token   string
	Expires time.Time
}

type jobClaims struct {
	Subject string `json:"sub"`
	Job     string `json:"job"`
	Scope   string `json:"scope"`
	Aud     string `json:"aud"`
}

// Start records a grant for a job the owner just started and returns its
// job token, valid for ttl on the status route named scope.
func (j *Jobs) Start(ctx context.Context, kind, scope, jobID string, owner *token.Claims, ttl time.Duration) (*JobToken, error) {
	k := owner.Key()
	if k == nil || !k.CanSign() {
		return nil, fmt.Errorf("recording job grant: the owner's token key %w", token.ErrCannotSign)
	}
	snap, err := owner.Snapshot()
	if err != nil {
		return nil, err
	}
	now := j.now()
	g := &store.JobGrant{ID: GrantID(kind, jobID), JobID: jobID, Subject: owner.Subject, Claims: snap,
		Alg: k.Alg, KID: k.KID, Created: now, Expires: now.Add(ttl)}
	if err := j.Store.PutGrant(ctx, g); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	claims, _ := json.Marshal(jobClaims{Subject: owner.Subject, Job: jobID, Scope: scope, Aud: JobAudience})
	tok, exp, err := j.Key.Mint(claims, token.JobTokenTyp, now, ttl)
	if err != nil {
		return nil, err
	}
	return &JobToken{Token: tok, Expires: exp}, nil
}

// ErrWrongJob: a valid job token for another job or another kind of job.
var ErrWrongJob = errors.New("job token is for another job")

// CheckToken verifies a job token for job jobID on the status route named
// scope. A token that is not a valid job token is a *token.Error; a valid
// one for another job is ErrWrongJob.
func (j *Jobs) CheckToken(ctx context.Context, raw, scope, jobID string) error {
	c, err := j.Verifier.Verify(ctx, raw)
	if err != nil {
		return err
	}
	job, _ := c.Text("job")
	sc, _ := c.Text("scope")
	if job != jobID || sc != scope {
		return ErrWrongJob
	}
	return nil
}

// Grant returns the live grant of a job, store.ErrNotFound when there is
// none, or an error wrapping ErrUnavailable.
func (j *Jobs) Grant(ctx context.Context, kind, jobID string) (*store.JobGrant, error) {
	g, err := j.Store.GetGrant(ctx, GrantID(kind, jobID), j.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return g, err
}

// Mint signs a short-lived access token for a grant's owner, with the key
// the API signed the owner's token with, for one status request, and
// returns its claims too.
func (j *Jobs) Mint(g *store.JobGrant) (string, *token.Claims, error) {
	k := j.Keys.SigningKey(g.Alg, g.KID)
	if k == nil {
		return "", nil, &Refusal{ReasonKeyGone}
	}
	now := j.now()
	return k.MintClaims(g.Claims, "JWT", now, min(JobStatusTTL, g.Expires.Sub(now)))
}

// Done ends a grant after a terminal status: it lives on for after.
func (j *Jobs) Done(ctx context.Context, kind, jobID string, after time.Duration) error {
	if err := j.Store.ShortenGrant(ctx, GrantID(kind, jobID), j.now().Add(after)); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}
