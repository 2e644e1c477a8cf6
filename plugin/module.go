// Package plugin is the tokengate Caddy module: the HTTP handler
// `http.handlers.tokengate` and its Caddyfile directive `tokengate`. It is the
// thin, Caddy-facing layer; token rules live in plugin/token and metrics in
// the top-level metrics package, neither of which imports Caddy.
package plugin

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/tokengate/tokengate/metrics"
	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

func init() {
	caddy.RegisterModule(Gate{})
}

// collectors are created once per process so counters survive config
// reloads; each Provision registers them into the new config's registry.
var collectors = metrics.New(reasonLabels())

// Rejection reasons beyond the token's own, for requests whose expired
// token could not be refreshed in flight.
const (
	reasonSubjectMismatch = "subject_mismatch" // the refresh credential belongs to another user
	reasonRevoked         = "revoked"          // the session was revoked after a replay
	reasonSessionEnded    = "session_ended"    // no live session: logged out, idle, past its lifetime
	reasonStaleSession    = "stale_session"    // the refresh credential was superseded elsewhere
)

func reasonLabels() []string {
	out := make([]string, 0, len(token.Reasons)+4)
	for _, r := range token.Reasons {
		out = append(out, string(r))
	}
	return append(out, reasonSubjectMismatch, reasonRevoked, reasonSessionEnded, reasonStaleSession,
		reasonWrongJob, reasonJobEnded)
}

// The verified-token cache: tokens remembered per handler, and how long one
// verification is reused (never past the token's exp).
const (
	verifiedCacheSize = 16384
	verifiedCacheAge  = time.Minute
)

// Gate is the tokengate HTTP handler. It verifies the access tokens an
// existing API signs before requests reach it, and passes the caller's
// identity upstream.
type Gate struct {
	// Keys verify access tokens. Each key is bound to one algorithm. At least
	// one key or one JWKS URL is required.
	Keys []KeyConfig `json:"keys,omitempty"`

	// JWKSURLs are JWK Set URLs whose published asymmetric keys also verify
	// tokens (verification only). Fetched at start and refreshed every
	// 15 minutes, and on an unknown kid at most every 5 minutes.
	JWKSURLs []string `json:"jwks_urls,omitempty"`

	// Issuer, when set, must equal the token's iss claim.
	Issuer string `json:"issuer,omitempty"`

	// Audience, when set, must share a value with the token's aud claim.
	Audience []string `json:"audience,omitempty"`

	// Leeway is the clock-skew allowance for exp, nbf and iat.
	// Default (absent): 30s. At most 5m; 0 allows none.
	Leeway *caddy.Duration `json:"leeway,omitempty"`

	// TokenSources are where the access token is looked for, in order; the
	// first one present is used. Default: the Authorization header with the
	// Bearer scheme.
	TokenSources []TokenSource `json:"token_sources,omitempty"`

	// Public lists path patterns (Caddy path-matcher syntax, e.g. /health or
	// /auth/*) that pass without a token.
	Public []string `json:"public,omitempty"`

	// ForwardClaims set upstream request headers from claims of a verified
	// token. Client-sent copies of every header named here are removed from
	// every request, public ones included, so they cannot be spoofed.
	ForwardClaims []ForwardClaim `json:"forward_claims,omitempty"`

	// Realm is the realm in WWW-Authenticate answers. Default: tokengate.
	Realm string `json:"realm,omitempty"`

	// AllowWeakKey starts even when an HMAC secret is weak (under 32 bytes,
	// a well-known secret, or of very few distinct characters). Every start
	// then logs a warning and the caddy_tokengate_weak_key gauge counts it.
	// Default: false, and a weak secret refuses to start.
	AllowWeakKey bool `json:"allow_weak_key,omitempty"`

	// Session turns on sessions: a rotating refresh token added to the
	// API's login answer, a refresh route and a logout route.
	Session *SessionConfig `json:"session,omitempty"`

	// Jobs are long-running job kinds whose status polling outlives the
	// owner's access token (job grants and job tokens).
	Jobs []JobConfig `json:"jobs,omitempty"`

	// Store keeps sessions and job grants. Default: the file store.
	Store *StoreConfig `json:"store,omitempty"`

	verifier     *token.Verifier
	sessions     *session.Manager
	jobs         *session.Jobs
	inflight     *singleflight.Group
	storeKey     string
	public       caddyhttp.MatchPath
	sources      []TokenSource
	stripHeaders []string
	weak         bool
	logger       *zap.Logger
}

// SessionConfig is the session policy and its routes.
type SessionConfig struct {
	// Login is the API's login route. Its 2xx JSON answer holding a valid
	// access token in Field opens a session.
	Login LoginRoute `json:"login"`
	// RefreshPath is the refresh route (POST), answered by tokengate and
	// never forwarded.
	RefreshPath string `json:"refresh_path"`
	// LogoutPath is the logout route (POST), answered by tokengate; optional.
	LogoutPath string `json:"logout_path,omitempty"`
	// AccessTTL is the lifetime of access tokens tokengate mints. Default:
	// the lifetime of the API's own login token (exp - iat), else 1h.
	AccessTTL caddy.Duration `json:"access_ttl,omitempty"`
	// Idle ends a session unused this long. Default: 24h.
	Idle caddy.Duration `json:"idle,omitempty"`
	// Lifetime ends a session this long after login. Default: 7d.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`
	// ReuseGrace is how long the previous refresh token still returns its
	// successor (parallel requests, several tabs). Default: 10s. At most 1m.
	ReuseGrace caddy.Duration `json:"reuse_grace,omitempty"`
	// Cookie is the refresh cookie; always HttpOnly and Secure.
	Cookie CookieConfig `json:"cookie,omitempty"`
	// BodyFields also returns refresh_token and refresh_expires_in in the
	// login answer's JSON, and refresh_token in refresh answers, for clients
	// that cannot use cookies. Default: false (cookie only).
	BodyFields bool `json:"body_fields,omitempty"`
	// RefreshHeader is a request header that may carry the refresh token
	// (non-browser clients; inline refresh). Optional.
	RefreshHeader string `json:"refresh_header,omitempty"`
	// AllowedOrigins may call the refresh and logout routes with the
	// refresh cookie from a browser, besides the site's own origin.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// AccessTokenHeader is the response header carrying the access token
	// minted by an inline refresh; <name>-Expires-In carries its lifetime in
	// seconds. Default: X-Access-Token.
	AccessTokenHeader string `json:"access_token_header,omitempty"`
}

// LoginRoute is the API's login route.
type LoginRoute struct {
	// Method is the HTTP method. Default: POST.
	Method string `json:"method,omitempty"`
	// Path is the exact request path, e.g. /auth/verify-otp.
	Path string `json:"path"`
	// Field is the JSON field of the answer holding the access token.
	// Default: access_token.
	Field string `json:"field,omitempty"`
}

// CookieConfig is the refresh cookie.
type CookieConfig struct {
	// Name. Default: tg_refresh.
	Name string `json:"name,omitempty"`
	// Path. Default: / (the cookie must reach API routes for inline refresh).
	Path string `json:"path,omitempty"`
	// Domain. Default: none (host-only cookie).
	Domain string `json:"domain,omitempty"`
	// SameSite: strict (default), lax or none.
	SameSite string `json:"same_site,omitempty"`
}

// KeyConfig is one verification key.
type KeyConfig struct {
	// Alg is the one algorithm the key is used with: HS256, HS384, HS512,
	// RS256, PS256, ES256 or EdDSA.
	Alg string `json:"alg"`
	// Secret is the HMAC secret for HS* keys, usually a placeholder such as
	// {env.JWT_SECRET} so the secret stays out of the config.
	Secret string `json:"secret,omitempty"`
	// File is a PEM file holding the public (or private) key for the other
	// algorithms. Placeholders are expanded.
	File string `json:"file,omitempty"`
	// KID is the key id tokens name in their kid header; optional.
	KID string `json:"kid,omitempty"`
	// Retired keys verify tokens signed before a key rotation but never
	// sign; a token they verify is re-signed with the current key (the
	// first one not retired) before it goes upstream, so the API, already
	// on the new key, accepts it.
	Retired bool `json:"retired,omitempty"`
}

// TokenSource is one place to look for the access token.
type TokenSource struct {
	// From is header, cookie or query.
	From string `json:"from"`
	// Name is the header, cookie or query parameter name. An Authorization
	// header must use the Bearer scheme; other headers carry the token alone
	// or after "Bearer ".
	Name string `json:"name"`
}

// ForwardClaim copies one claim of a verified token to an upstream header.
type ForwardClaim struct {
	// Claim is the claim name, e.g. sub or email.
	Claim string `json:"claim"`
	// Header is the upstream request header, e.g. X-User-Id.
	Header string `json:"header"`
}

// CaddyModule returns the Caddy module information.
func (Gate) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.tokengate",
		New: func() caddy.Module { return new(Gate) },
	}
}

// Provision sets defaults, resolves placeholders in secrets and paths,
// builds the key set and registers metrics.
func (g *Gate) Provision(ctx caddy.Context) error {
	g.logger = ctx.Logger()
	if err := collectors.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	if g.Leeway == nil {
		d := caddy.Duration(token.DefaultLeeway)
		g.Leeway = &d
	}
	if g.Realm == "" {
		g.Realm = "tokengate"
	}
	g.sources = g.TokenSources
	if len(g.sources) == 0 {
		g.sources = []TokenSource{{From: "header", Name: "Authorization"}}
	}

	repl := caddy.NewReplacer()
	keys := make([]*token.Key, 0, len(g.Keys))
	var weak []string
	for i, kc := range g.Keys {
		material := repl.ReplaceAll(kc.Secret, "")
		if !strings.HasPrefix(kc.Alg, "HS") {
			material = repl.ReplaceAll(kc.File, "")
		}
		k, err := token.ParseKey(kc.Alg, material, kc.KID)
		if err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
		k.Retired = kc.Retired
		if reason := k.Weakness; reason != nil {
			if !g.AllowWeakKey {
				return fmt.Errorf("key %d (%s): %v. Generate a strong secret (for example: openssl rand -base64 48), "+
					"set it in the API and in this config; or, knowingly, set allow_weak_key to start anyway", i+1, kc.Alg, reason)
			}
			weak = append(weak, fmt.Sprintf("key %d (%s): %v", i+1, kc.Alg, reason))
		}
		keys = append(keys, k)
	}
	ks, err := token.NewKeySet(keys)
	if err != nil {
		return err
	}
	if len(g.JWKSURLs) > 0 {
		urls := make([]string, len(g.JWKSURLs))
		for i, u := range g.JWKSURLs {
			urls[i] = repl.ReplaceAll(u, "")
		}
		if err := ks.WithJWKS(ctx, urls, 15*time.Minute); err != nil {
			return err
		}
	}
	g.verifier = &token.Verifier{
		Keys:      ks,
		Issuer:    g.Issuer,
		Audience:  g.Audience,
		Leeway:    time.Duration(*g.Leeway),
		RejectTyp: []string{token.JobTokenTyp},
		// A client sends the same token until it expires; verifying it once
		// a minute instead of on every request is most of tokengate's cost.
		Cache: token.NewCache(verifiedCacheSize, verifiedCacheAge),
	}

	if g.Session != nil || len(g.Jobs) > 0 {
		if err := g.provisionSessions(ks); err != nil {
			return err
		}
	}

	g.public = caddyhttp.MatchPath(g.Public)
	if err := g.public.Provision(ctx); err != nil {
		return fmt.Errorf("public paths: %w", err)
	}
	g.stripHeaders = g.stripHeaders[:0]
	for _, fc := range g.ForwardClaims {
		g.stripHeaders = append(g.stripHeaders, textproto.CanonicalMIMEHeaderKey(fc.Header))
	}

	if len(weak) > 0 {
		g.weak = true
		collectors.WeakKey.Inc()
		for _, w := range weak {
			g.logger.Warn("allow_weak_key is set: starting with a weak HMAC secret; anyone who guesses it can sign tokens the API accepts",
				zap.String("key", w))
		}
	}
	return nil
}

// provisionSessions opens the store and sets up sessions and job grants.
func (g *Gate) provisionSessions(ks *token.KeySet) error {
	if g.Store == nil {
		g.Store = &StoreConfig{}
	}
	st, key, err := openStore(*g.Store)
	if err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	g.storeKey = key
	st = store.Observe(st, observeStore)
	if len(g.Jobs) > 0 {
		for i := range g.Jobs {
			g.Jobs[i].provision()
		}
		if g.jobs, err = session.NewJobs(st, ks, time.Duration(*g.Leeway)); err != nil && !errors.Is(err, token.ErrCannotSign) {
			return err
		}
	}
	if g.Session == nil {
		return nil
	}
	sc := g.Session
	if sc.Login.Method == "" {
		sc.Login.Method = http.MethodPost
	}
	if sc.Login.Field == "" {
		sc.Login.Field = "access_token"
	}
	if sc.ReuseGrace == 0 {
		sc.ReuseGrace = caddy.Duration(session.DefaultGrace)
	}
	if sc.Idle == 0 {
		sc.Idle = caddy.Duration(session.DefaultIdle)
	}
	if sc.Lifetime == 0 {
		sc.Lifetime = caddy.Duration(session.DefaultLifetime)
	}
	if sc.Cookie.Name == "" {
		sc.Cookie.Name = "tg_refresh"
	}
	if sc.Cookie.Path == "" {
		sc.Cookie.Path = "/"
	}
	if sc.Cookie.SameSite == "" {
		sc.Cookie.SameSite = "strict"
	}
	if sc.AccessTokenHeader == "" {
		sc.AccessTokenHeader = "X-Access-Token"
	}
	g.inflight = new(singleflight.Group)
	g.sessions = &session.Manager{
		Store: st,
		Keys:  ks,
		Config: session.Config{
			AccessTTL: time.Duration(sc.AccessTTL), Idle: time.Duration(sc.Idle),
			Lifetime: time.Duration(sc.Lifetime), Grace: time.Duration(sc.ReuseGrace),
		},
	}
	return nil
}

func observeStore(op string, took time.Duration, failure error) {
	collectors.StoreDuration.WithLabelValues(op).Observe(took.Seconds())
	if failure != nil {
		collectors.StoreErrors.WithLabelValues(op).Inc()
	}
}

// Validate checks the configuration without changing it.
func (g *Gate) Validate() error {
	var errs []error
	if g.Session != nil {
		errs = append(errs, g.validateSessions()...)
	}
	for i := range g.Jobs {
		errs = append(errs, g.Jobs[i].validate(i)...)
	}
	if len(g.Jobs) > 0 && g.jobs == nil {
		errs = append(errs, errors.New("job: a signing key is required to mint access tokens for a job's owner "+
			"(an HMAC secret or a private key, the one the API signs with)"))
	}
	if len(g.Keys) == 0 && len(g.JWKSURLs) == 0 {
		errs = append(errs, errors.New("no key: add `key <alg> <secret-or-pem-file>` or `jwks <url>`"))
	}
	if d := time.Duration(*g.Leeway); d < 0 || d > token.MaxLeeway {
		errs = append(errs, fmt.Errorf("leeway %s is outside 0..%s", d, token.MaxLeeway))
	}
	if strings.ContainsAny(g.Realm, "\"\\\r\n") {
		errs = append(errs, errors.New("realm may not contain quotes, backslashes or line breaks"))
	}
	for _, s := range g.sources {
		switch {
		case s.From != "header" && s.From != "cookie" && s.From != "query":
			errs = append(errs, fmt.Errorf("token source %q: must be header, cookie or query", s.From))
		case s.Name == "":
			errs = append(errs, fmt.Errorf("token source %s: a name is required", s.From))
		}
	}
	for _, fc := range g.ForwardClaims {
		if fc.Claim == "" || fc.Header == "" || !validHeaderName(fc.Header) {
			errs = append(errs, fmt.Errorf("forward_claim %q -> %q: a claim and a valid header name are required", fc.Claim, fc.Header))
		}
		if strings.EqualFold(fc.Header, "Authorization") || strings.EqualFold(fc.Header, "Host") {
			errs = append(errs, fmt.Errorf("forward_claim may not set the %s header", fc.Header))
		}
	}
	return errors.Join(errs...)
}

func (g *Gate) validateSessions() []error {
	var errs []error
	sc := g.Session
	if !strings.HasPrefix(sc.Login.Path, "/") {
		errs = append(errs, errors.New("session: a login route is required: `login POST /auth/verify-otp`"))
	}
	if !strings.HasPrefix(sc.RefreshPath, "/") {
		errs = append(errs, errors.New("session: a refresh route is required: `refresh /auth/refresh`"))
	}
	if sc.LogoutPath != "" && !strings.HasPrefix(sc.LogoutPath, "/") {
		errs = append(errs, errors.New("session: logout must be a path"))
	}
	if sc.RefreshPath != "" && (sc.RefreshPath == sc.Login.Path || sc.RefreshPath == sc.LogoutPath) {
		errs = append(errs, errors.New("session: login, refresh and logout need distinct paths"))
	}
	if g.verifier != nil && !g.verifier.Keys.CanSign() {
		errs = append(errs, errors.New("session: a signing key is required to mint access tokens "+
			"(an HMAC secret or a private key, the one the API signs with); public keys and JWKS only verify"))
	}
	if d := time.Duration(sc.ReuseGrace); d < 0 || d > time.Minute {
		errs = append(errs, fmt.Errorf("session: reuse_grace %s is outside 0..1m", d))
	}
	if sc.Idle < 0 || sc.Lifetime < 0 || sc.AccessTTL < 0 {
		errs = append(errs, errors.New("session: durations must be positive"))
	}
	if sc.Idle > sc.Lifetime {
		errs = append(errs, fmt.Errorf("session: idle %s is longer than lifetime %s", time.Duration(sc.Idle), time.Duration(sc.Lifetime)))
	}
	switch strings.ToLower(sc.Cookie.SameSite) {
	case "strict", "lax", "none":
	default:
		errs = append(errs, fmt.Errorf("session: cookie same_site %q: use strict, lax or none", sc.Cookie.SameSite))
	}
	if sc.RefreshHeader != "" && !validHeaderName(sc.RefreshHeader) {
		errs = append(errs, fmt.Errorf("session: refresh_header %q is not a header name", sc.RefreshHeader))
	}
	if !validHeaderName(sc.AccessTokenHeader) {
		errs = append(errs, fmt.Errorf("session: access_token_header %q is not a header name", sc.AccessTokenHeader))
	}
	return errs
}

func validHeaderName(h string) bool {
	for _, c := range []byte(h) {
		if !(c == '-' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return h != ""
}

// Cleanup releases what Provision took: the weak-key gauge's count and the
// shared store (closed when no config uses it any more). JWKS
// refreshing stops with the config's context.
func (g *Gate) Cleanup() error {
	if g.weak {
		collectors.WeakKey.Dec()
		g.weak = false
	}
	if g.storeKey != "" {
		_, err := stores.Delete(g.storeKey)
		g.storeKey = ""
		return err
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Gate)(nil)
	_ caddy.Validator    = (*Gate)(nil)
	_ caddy.CleanerUpper = (*Gate)(nil)
	_ caddy.Module       = (*Gate)(nil)
)
