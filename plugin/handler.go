package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tokengate/tokengate/metrics"
	"github.com/tokengate/tokengate/plugin/token"
)

// userPlaceholder prefixes the identity placeholders: {http.auth.user.id}
// is the sub claim and {http.auth.user.<claim>} any other claim, the names
// Caddy's own authentication handler uses.
const userPlaceholder = "http.auth.user."

// The decision counters, resolved once: they are touched on every request.
var (
	decidedPublic    = collectors.Decisions.WithLabelValues(metrics.DecisionPublic)
	decidedAllowed   = collectors.Decisions.WithLabelValues(metrics.DecisionAllowed)
	decidedRejected  = collectors.Decisions.WithLabelValues(metrics.DecisionRejected)
	decidedRefreshed = collectors.Decisions.WithLabelValues(metrics.DecisionRefreshed)
)

// ServeHTTP classifies the request, verifies its access token and passes it
// on with the caller's identity, or answers 401.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	for _, h := range g.stripHeaders {
		r.Header.Del(h)
	}
	if g.sessions != nil {
		if handled, err := g.sessionRoute(w, r, next); handled {
			return err
		}
	}
	if len(g.public) > 0 {
		ok, err := g.public.MatchWithError(r)
		if err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if ok {
			decidedPublic.Inc()
			return next.ServeHTTP(w, r)
		}
	}
	if len(g.Jobs) > 0 {
		if j, id := g.jobStatusRoute(r); j != nil {
			return g.serveJobStatus(w, r, next, j, id)
		}
	}

	raw, err := g.extract(r)
	var claims *token.Claims
	if err == nil {
		claims, err = g.verifier.Verify(r.Context(), raw)
	}
	if err != nil {
		if g.sessions != nil && claims != nil && isExpired(err) {
			if ref, fromCookie := g.inlineCredential(r); ref != "" {
				return g.serveInline(w, r, next, raw, claims, ref, fromCookie)
			}
		}
		return g.reject(w, r, raw, claims, err)
	}

	if g.sessions != nil && pastExp(claims) {
		// Inside the leeway but past exp: the API checks exp itself and
		// would refuse it, so refresh now if the request can be refreshed.
		if ref, fromCookie := g.inlineCredential(r); ref != "" {
			return g.serveInline(w, r, next, raw, claims, ref, fromCookie)
		}
	}
	decidedAllowed.Inc()
	collectors.TokenRemaining.Observe(time.Until(claims.ExpiresAt).Seconds())
	g.setIdentity(r, claims)
	if err := g.resign(r, claims); err != nil {
		return err
	}
	return g.pass(w, r, next, claims)
}

// resign replaces a token verified by a retired key with the same claims
// (and expiry) signed by the current key: the API has moved to the new
// key, and the client need not log in again.
func (g *Gate) resign(r *http.Request, c *token.Claims) error {
	if k := c.Key(); k == nil || !k.Retired {
		return nil
	}
	cur := g.verifier.Keys.SigningKey(c.Key().Alg, "")
	if cur == nil {
		return caddyhttp.Error(http.StatusInternalServerError, errors.New("a retired key verified a token but no current key can re-sign it"))
	}
	snap, err := c.Snapshot()
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	fresh, _, err := cur.Mint(snap, "JWT", time.Now(), time.Until(c.ExpiresAt))
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("re-signing a token of a retired key: %w", err))
	}
	r.Header.Set("Authorization", "Bearer "+fresh)
	return nil
}

// pastExp reports a token accepted only thanks to the leeway.
func pastExp(c *token.Claims) bool { return !time.Now().Before(c.ExpiresAt) }

func isExpired(err error) bool {
	var te *token.Error
	return errors.As(err, &te) && te.Reason == token.ReasonExpired
}

// forward passes an authorized request on, and counts an upstream 401: the
// API refused what tokengate accepted, so the two disagree on keys or
// claims. The answer itself is passed through.
func (g *Gate) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	err := next.ServeHTTP(w, r)
	g.noteUpstream401(r)
	return err
}

// noteUpstream401 reads the upstream's status where reverse_proxy leaves
// it, {http.reverse_proxy.status_code}: no wrapper around the response
// writer on the hot path.
func (g *Gate) noteUpstream401(r *http.Request) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return
	}
	if v, ok := repl.Get("http.reverse_proxy.status_code"); ok && v == http.StatusUnauthorized {
		collectors.UpstreamUnauthorized.Inc()
		g.logger.Warn("the upstream answered 401 to a request tokengate authorized; do tokengate and the API use the same keys?",
			zap.String("path", r.URL.Path))
	}
}

// extract finds the access token in the configured sources. A source that is
// present but unusable is an error rather than a reason to look further, so
// a request never gets through on a second credential it did not mean to use.
func (g *Gate) extract(r *http.Request) (string, error) {
	for _, s := range g.sources {
		switch s.From {
		case "header":
			vals := r.Header.Values(s.Name)
			if len(vals) == 0 {
				continue
			}
			if len(vals) > 1 {
				return "", &token.Error{Reason: token.ReasonMalformed, Detail: "more than one " + s.Name + " header"}
			}
			if len(vals[0]) > token.MaxTokenSize {
				return "", &token.Error{Reason: token.ReasonOversized, Detail: s.Name + " header over 8 KiB"}
			}
			return bearer(vals[0], strings.EqualFold(s.Name, "Authorization"))
		case "cookie":
			c, err := r.Cookie(s.Name)
			if err != nil {
				continue
			}
			return c.Value, nil
		case "query":
			if v := r.URL.Query().Get(s.Name); v != "" {
				return v, nil
			}
		}
	}
	return "", nil
}

// bearer takes the token out of a header value. The Authorization header
// must use the Bearer scheme (RFC 6750 s2.1); other headers may carry the
// token alone.
func bearer(v string, schemeRequired bool) (string, error) {
	const scheme = "bearer "
	if len(v) >= len(scheme) && strings.EqualFold(v[:len(scheme)], scheme) {
		return strings.TrimSpace(v[len(scheme):]), nil
	}
	if strings.EqualFold(strings.TrimSpace(v), "bearer") {
		// "Bearer " with nothing after it (the trailing space is trimmed in
		// transit): a client that has no token yet.
		return "", nil
	}
	if schemeRequired {
		return "", &token.Error{Reason: token.ReasonMalformed, Detail: "authorization scheme is not Bearer"}
	}
	return strings.TrimSpace(v), nil
}

// setIdentity exposes the verified identity to placeholders and sets the
// forwarded claim headers.
func (g *Gate) setIdentity(r *http.Request, c *token.Claims) {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set(userPlaceholder+"id", c.Subject)
		repl.Map(func(key string) (any, bool) {
			name, ok := strings.CutPrefix(key, userPlaceholder)
			if !ok {
				return nil, false
			}
			return c.Text(name)
		})
	}
	for _, fc := range g.ForwardClaims {
		if v, ok := c.Text(fc.Claim); ok {
			r.Header.Set(fc.Header, sanitizeHeaderValue(v))
		}
	}
}

// sanitizeHeaderValue drops control characters a claim may hold; a claim
// must not be able to add a header line upstream.
func sanitizeHeaderValue(v string) string {
	if strings.IndexFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) < 0 {
		return v
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, v)
}

// rejection is the JSON body of a 401 answer.
type rejection struct {
	Error   string `json:"error"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// reject answers 401 with a JSON body and an RFC 6750 challenge, counts the
// reason and logs a fingerprint of the token, never the token.
func (g *Gate) reject(w http.ResponseWriter, r *http.Request, raw string, claims *token.Claims, err error) error {
	var te *token.Error
	if !errors.As(err, &te) {
		te = &token.Error{Reason: token.ReasonMalformed, Detail: "unreadable token"}
	}
	if raw == "" && te.Reason == token.ReasonMissing {
		te.Detail = "no access token in the request"
	}
	decidedRejected.Inc()
	collectors.Rejections.WithLabelValues(string(te.Reason)).Inc()
	if te.Reason == token.ReasonExpired && claims != nil {
		collectors.ExpiredTokenAge.Observe(time.Since(claims.ExpiresAt).Seconds())
	}
	if ce := g.logger.Check(zapcore.DebugLevel, "access token refused"); ce != nil {
		ce.Write(zap.String("reason", string(te.Reason)), zap.String("detail", te.Detail),
			zap.String("token_fp", fingerprint(raw)), zap.String("path", r.URL.Path))
	}

	challenge := `Bearer realm="` + g.Realm + `"`
	if te.Reason != token.ReasonMissing {
		// RFC 6750 s3.1: a request without credentials gets no error code.
		challenge += `, error="invalid_token", error_description=` + strconv.Quote(te.Detail)
	}
	h := w.Header()
	h.Set("WWW-Authenticate", challenge)
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	body, _ := json.Marshal(rejection{Error: "invalid_token", Reason: string(te.Reason), Message: te.Detail})
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(body)
	return nil
}

// fingerprint names a token in logs: the first 8 hex digits of its SHA-256.
func fingerprint(raw string) string {
	if raw == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:4])
}

// Interface guards
var (
	_ caddyhttp.MiddlewareHandler = (*Gate)(nil)
)
