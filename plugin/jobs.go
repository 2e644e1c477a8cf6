package plugin

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// Job defaults.
const (
	defaultJobTTL       = 48 * time.Hour
	defaultJobDoneAfter = 10 * time.Minute
	defaultJobIDField   = "jobId"
	defaultJobHeader    = "X-Job-Token"
)

// Job-status auth kinds, the label values of job_status_requests_total.
const (
	authAccess       = "access"
	authJobToken     = "job_token"
	authExpiredOwner = "expired_owner"
)

// Rejection reasons of the job status route.
const (
	reasonWrongJob = "wrong_job" // a valid job token for another job (403)
	reasonJobEnded = "job_ended" // a valid job token whose grant has ended
)

// JobConfig is one kind of long-running job: the route that starts it and
// the route that reports its status.
type JobConfig struct {
	// Method and Path are the job-start route (exact path). Method default: POST.
	Method string `json:"method,omitempty"`
	Path   string `json:"path"`
	// StatusMethod and StatusPath are the status route; StatusPath holds
	// {id} where the job id goes, e.g. /leasing/renewals/sync/{id}.
	// StatusMethod default: GET.
	StatusMethod string `json:"status_method,omitempty"`
	StatusPath   string `json:"status_path"`
	// IDField is the JSON field of the start answer holding the job id.
	// Default: jobId.
	IDField string `json:"id_field,omitempty"`
	// TTL is how long the grant and its job token live. Default: 48h.
	TTL caddy.Duration `json:"ttl,omitempty"`
	// TokenHeader carries the job token in the start answer, and may carry
	// it on status requests. Default: X-Job-Token.
	TokenHeader string `json:"token_header,omitempty"`
	// BodyField, when set, also puts the job token in the start answer's JSON.
	BodyField string `json:"body_field,omitempty"`
	// AllowExpiredOwner lets the owner's expired (but correctly signed)
	// access token poll the status while the grant lives.
	AllowExpiredOwner bool `json:"allow_expired_owner,omitempty"`
	// DoneField and DoneValues name a terminal state in the status answer
	// (e.g. status: completed, failed); the grant then ends DoneAfter later
	// (default 10m).
	DoneField  string         `json:"done_field,omitempty"`
	DoneValues []string       `json:"done_values,omitempty"`
	DoneAfter  caddy.Duration `json:"done_after,omitempty"`

	prefix, suffix string
}

func (j *JobConfig) kind() string  { return j.Method + " " + j.Path }
func (j *JobConfig) scope() string { return j.StatusMethod + " " + j.StatusPath }

func (j *JobConfig) provision() {
	if j.Method == "" {
		j.Method = http.MethodPost
	}
	if j.StatusMethod == "" {
		j.StatusMethod = http.MethodGet
	}
	if j.IDField == "" {
		j.IDField = defaultJobIDField
	}
	if j.TTL == 0 {
		j.TTL = caddy.Duration(defaultJobTTL)
	}
	if j.TokenHeader == "" {
		j.TokenHeader = defaultJobHeader
	}
	if j.DoneAfter == 0 {
		j.DoneAfter = caddy.Duration(defaultJobDoneAfter)
	}
	j.prefix, j.suffix, _ = strings.Cut(j.StatusPath, "{id}")
}

func (j *JobConfig) validate(i int) []error {
	var errs []error
	name := fmt.Sprintf("job %d (%s)", i+1, j.Path)
	if !strings.HasPrefix(j.Path, "/") {
		errs = append(errs, fmt.Errorf("%s: the start route must be a path", name))
	}
	if !strings.HasPrefix(j.StatusPath, "/") || strings.Count(j.StatusPath, "{id}") != 1 {
		errs = append(errs, fmt.Errorf("%s: `status <METHOD> <path>` is required, with {id} once in the path", name))
	}
	if j.TTL < 0 || j.DoneAfter < 0 {
		errs = append(errs, fmt.Errorf("%s: durations must be positive", name))
	}
	if !validHeaderName(j.TokenHeader) {
		errs = append(errs, fmt.Errorf("%s: token_header %q is not a header name", name, j.TokenHeader))
	}
	if (j.DoneField == "") != (len(j.DoneValues) == 0) {
		errs = append(errs, fmt.Errorf("%s: done_field and done_values go together", name))
	}
	return errs
}

// statusID returns the job id when r is this job kind's status request.
func (j *JobConfig) statusID(r *http.Request) (string, bool) {
	p := r.URL.Path
	if r.Method != j.StatusMethod || len(p) <= len(j.prefix)+len(j.suffix) ||
		!strings.HasPrefix(p, j.prefix) || !strings.HasSuffix(p, j.suffix) {
		return "", false
	}
	id := p[len(j.prefix) : len(p)-len(j.suffix)]
	return id, !strings.Contains(id, "/")
}

// jobStatusRoute finds the job kind whose status route r is, and the job id.
func (g *Gate) jobStatusRoute(r *http.Request) (*JobConfig, string) {
	for i := range g.Jobs {
		if id, ok := g.Jobs[i].statusID(r); ok {
			return &g.Jobs[i], id
		}
	}
	return nil, ""
}

// jobStartRoute finds the job kind whose start route r is.
func (g *Gate) jobStartRoute(r *http.Request) *JobConfig {
	for i := range g.Jobs {
		if j := &g.Jobs[i]; r.Method == j.Method && r.URL.Path == j.Path {
			return j
		}
	}
	return nil
}

// pass hands an authorized request on: to the job-start augmentation when
// it starts a job, else straight upstream. owner is the verified identity.
func (g *Gate) pass(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, owner *token.Claims) error {
	if j := g.jobStartRoute(r); j != nil {
		return g.serveJobStart(w, r, next, j, owner)
	}
	return g.forward(w, r, next)
}

// serveJobStart forwards the job-start request and, on a 2xx JSON answer
// with a job id, records a grant and returns a job token. The job has
// started upstream by then, so if the grant cannot be recorded the API's
// answer still goes back unchanged (polling then needs a valid or
// refreshable access token): a 503 would only make the client start the
// job again.
func (g *Gate) serveJobStart(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, owner *token.Claims) error {
	c, err := captureJSON(w, r, next)
	g.noteUpstream401(r)
	if c == nil || err != nil {
		return err
	}
	id, ok := field(c.body, j.IDField)
	if !ok || c.tooLarge() {
		g.logger.Warn("job start answer has no job id; no job grant recorded", zap.String("id_field", j.IDField))
		return c.pass()
	}
	jt, err := g.jobs.Start(r.Context(), j.kind(), j.scope(), id, owner, time.Duration(j.TTL))
	if err != nil {
		g.logger.Error("recording job grant; the API's answer goes back without a job token", zap.Error(err))
		return c.pass()
	}
	collectors.JobGrants.Inc()
	h := w.Header()
	h.Set(j.TokenHeader, jt.Token)
	if r.Header.Get("Origin") != "" {
		h.Add("Access-Control-Expose-Headers", j.TokenHeader)
	}
	body := c.body
	if j.BodyField != "" {
		if spliced, ok := spliceFields(body, fmt.Appendf(nil, `{%q:%q}`, j.BodyField, jt.Token)); ok {
			body = spliced
		}
	}
	return c.send(w, body)
}

// serveJobStatus authorizes a job status request: a valid access token; a
// job token for exactly this job; or, with allow_expired_owner, the
// owner's expired access token while the grant lives. With a job token or
// an expired owner token, the API receives a fresh short-lived access
// token for the owner, so its own guard passes.
func (g *Gate) serveJobStatus(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, id string) error {
	jobTok := r.Header.Get(j.TokenHeader)
	r.Header.Del(j.TokenHeader)
	raw, err := g.extract(r)
	var claims *token.Claims
	if err == nil {
		claims, err = g.verifier.Verify(r.Context(), raw)
	}
	var te *token.Error
	if err != nil && errors.As(err, &te) && te.Reason == token.ReasonWrongKind && jobTok == "" {
		// The job token came as the bearer token.
		jobTok, raw = raw, ""
	}
	// A token past its exp but inside the leeway is valid here, yet the API
	// would refuse it: treat it as expired when something else can serve.
	late := err == nil && pastExp(claims)
	switch {
	case err == nil && !(late && (jobTok != "" || j.AllowExpiredOwner)):
		collectors.JobStatusRequests.WithLabelValues(authAccess).Inc()
		decidedAllowed.Inc()
		g.setIdentity(r, claims)
		if err := g.resign(r, claims); err != nil {
			return err
		}
		return g.forwardStatus(w, r, next, j, id)
	case jobTok != "":
		return g.statusByJobToken(w, r, next, j, id, jobTok)
	case claims != nil && (late || isExpired(err)):
		if j.AllowExpiredOwner {
			served, err := g.statusByExpiredOwner(w, r, next, j, id, claims)
			if served || err != nil {
				return err
			}
		}
		if g.sessions != nil {
			if ref, fromCookie := g.inlineCredential(r); ref != "" {
				collectors.JobStatusRequests.WithLabelValues(authAccess).Inc()
				return g.serveInline(w, r, next, raw, claims, ref, fromCookie)
			}
		}
	}
	if late {
		collectors.JobStatusRequests.WithLabelValues(authAccess).Inc()
		decidedAllowed.Inc()
		g.setIdentity(r, claims)
		return g.forwardStatus(w, r, next, j, id)
	}
	return g.reject(w, r, raw, claims, err)
}

func (g *Gate) statusByJobToken(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, id, jobTok string) error {
	err := g.jobs.CheckToken(r.Context(), jobTok, j.scope(), id)
	if errors.Is(err, session.ErrWrongJob) {
		return g.forbid(w, "the job token is for another job")
	}
	if err != nil {
		return g.reject(w, r, jobTok, nil, err)
	}
	grant, err := g.jobs.Grant(r.Context(), j.kind(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return g.reject(w, r, jobTok, nil, &token.Error{Reason: reasonJobEnded, Detail: "the job's grant has ended"})
	case err != nil:
		unavailable(w)
		return nil
	}
	collectors.JobStatusRequests.WithLabelValues(authJobToken).Inc()
	return g.forwardAsOwner(w, r, next, j, id, grant)
}

// statusByExpiredOwner serves the owner's expired token while the job's
// grant lives; served is false when there is no grant of this owner.
func (g *Gate) statusByExpiredOwner(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, id string, claims *token.Claims) (served bool, err error) {
	grant, err := g.jobs.Grant(r.Context(), j.kind(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		unavailable(w)
		return true, nil
	case grant.Subject != claims.Subject:
		return false, nil
	}
	collectors.JobStatusRequests.WithLabelValues(authExpiredOwner).Inc()
	collectors.ExpiredTokenAge.Observe(time.Since(claims.ExpiresAt).Seconds())
	return true, g.forwardAsOwner(w, r, next, j, id, grant)
}

// forwardAsOwner sends a status request upstream with a fresh access token
// for the grant's owner.
func (g *Gate) forwardAsOwner(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, id string, grant *store.JobGrant) error {
	access, owner, err := g.jobs.Mint(grant)
	if err != nil {
		g.logger.Error("minting an access token for a job's owner", zap.Error(err))
		return g.reject(w, r, "", nil, &token.Error{Reason: reasonJobEnded, Detail: "the job's owner key is no longer configured"})
	}
	decidedRefreshed.Inc()
	collectors.LogoutsPrevented.Inc()
	r.Header.Set("Authorization", "Bearer "+access)
	g.setIdentity(r, owner)
	return g.forwardStatus(w, r, next, j, id)
}

// forwardStatus forwards a status request; with done_field set it reads the
// answer and ends the grant DoneAfter after a terminal state.
func (g *Gate) forwardStatus(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, j *JobConfig, id string) error {
	if j.DoneField == "" {
		return g.forward(w, r, next)
	}
	c, err := captureJSON(w, r, next)
	g.noteUpstream401(r)
	if c == nil || err != nil {
		return err
	}
	if state, ok := field(c.body, j.DoneField); ok && slices.Contains(j.DoneValues, state) {
		if err := g.jobs.Done(r.Context(), j.kind(), id, time.Duration(j.DoneAfter)); err != nil {
			g.logger.Error("ending a finished job's grant", zap.Error(err))
		}
	}
	return c.pass()
}

// forbid answers 403 with an RFC 6750 insufficient_scope challenge.
func (g *Gate) forbid(w http.ResponseWriter, detail string) error {
	collectors.Rejections.WithLabelValues(reasonWrongJob).Inc()
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+g.Realm+`", error="insufficient_scope", error_description=`+strconv.Quote(detail))
	writeJSON(w, http.StatusForbidden, rejection{Error: "insufficient_scope", Reason: reasonWrongJob, Message: detail})
	return nil
}
