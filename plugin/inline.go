package plugin

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/token"
)

// inlineCredential is the refresh token a request carries outside its
// body: the refresh header, else the refresh cookie. Inline refresh reads
// only these (the body is the API's); the refresh route reads a JSON body
// first.
func (g *Gate) inlineCredential(r *http.Request) (tok string, fromCookie bool) {
	if h := g.Session.RefreshHeader; h != "" {
		if v := r.Header.Get(h); v != "" {
			return v, false
		}
	}
	if c, err := r.Cookie(g.Session.Cookie.Name); err == nil && c.Value != "" {
		return c.Value, true
	}
	return "", false
}

// inlineRejection maps a refusal of an inline refresh to the 401 reason.
func inlineRejection(reason string) string {
	switch reason {
	case session.ReasonSubject:
		return reasonSubjectMismatch
	case session.ReasonReused, session.ReasonRevoked:
		return reasonRevoked
	case session.ReasonStale:
		return reasonStaleSession
	}
	return reasonSessionEnded
}

// serveInline refreshes in flight: the request carries an expired but
// correctly signed access token and a refresh credential. Concurrent
// requests with the same pair share one refresh. The request goes upstream
// once, with the new access token, after the refresh: a body is never sent
// twice.
func (g *Gate) serveInline(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler,
	raw string, expired *token.Claims, ref string, fromCookie bool) error {
	// The refresh outlives the first caller's cancellation: the others
	// waiting on it still need it.
	ctx := context.WithoutCancel(r.Context())
	v, err, _ := g.inflight.Do(raw+"\x00"+ref, func() (any, error) {
		return g.sessions.Inline(ctx, raw, expired, ref)
	})
	if err != nil {
		if result, refused := g.refusedRefresh(w, "inline", ref, fromCookie, err); refused {
			return g.reject(w, r, raw, nil, &token.Error{Reason: token.Reason(inlineRejection(result)),
				Detail: "the access token has expired and the session cannot refresh it: " + result})
		}
		return nil
	}
	grant := v.(*session.Grant)
	result := grant.Outcome.String()
	if grant.Outcome == store.Live {
		result = "bridged"
	}
	g.countRefresh("inline", result)
	decidedRefreshed.Inc()
	collectors.LogoutsPrevented.Inc()
	collectors.ExpiredTokenAge.Observe(time.Since(expired.ExpiresAt).Seconds())

	r.Header.Set("Authorization", "Bearer "+grant.AccessToken)
	g.setIdentity(r, expired)
	name := g.Session.AccessTokenHeader
	h := w.Header()
	h.Set(name, grant.AccessToken)
	h.Set(name+"-Expires-In", strconv.FormatInt(int64(time.Until(grant.AccessExpires).Seconds()), 10))
	if r.Header.Get("Origin") != "" {
		h.Add("Access-Control-Expose-Headers", name+", "+name+"-Expires-In")
	}
	if fromCookie && grant.RefreshToken != ref {
		g.setRefreshCookie(w, grant.RefreshToken, grant.RefreshExpires)
	}
	return g.pass(w, r, next, expired)
}
