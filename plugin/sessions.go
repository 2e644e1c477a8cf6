package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/tokengate/tokengate/plugin/session"
	"github.com/tokengate/tokengate/plugin/token"
)

// Limits on what tokengate reads into memory.
const (
	// maxRefreshBody caps the body of refresh and logout requests.
	maxRefreshBody = 8 << 10
	// retryAfter is the Retry-After of 503 answers when the store is down.
	retryAfter = "2"
)

// sessionRoute answers the refresh and logout routes and augments the login
// route. It reports whether it handled the request.
func (g *Gate) sessionRoute(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (bool, error) {
	sc := g.Session
	switch r.URL.Path {
	case sc.RefreshPath:
		return true, g.serveRefresh(w, r)
	case sc.LogoutPath:
		if sc.LogoutPath != "" {
			return true, g.serveLogout(w, r)
		}
	case sc.Login.Path:
		if r.Method == sc.Login.Method {
			return true, g.serveLogin(w, r, next)
		}
	}
	return false, nil
}

// oauthError is the body of refresh-route errors (RFC 6749 s5.2), with
// tokengate's reason.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Reason      string `json:"reason,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", retryAfter)
	writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable",
		Description: "the session store cannot be reached; try again", Reason: "unavailable"})
}

// refreshCredential finds the refresh token: the JSON body's refresh_token,
// then the refresh header, then the cookie. fromCookie says where it came
// from. A body that is not what it should be is a 400, never a guess.
func (g *Gate) refreshCredential(r *http.Request) (tok string, fromCookie bool, err error) {
	if r.Body != nil && r.ContentLength != 0 {
		body, rerr := io.ReadAll(io.LimitReader(r.Body, maxRefreshBody+1))
		if rerr != nil {
			return "", false, errors.New("unreadable body")
		}
		if len(body) > maxRefreshBody {
			return "", false, errors.New("body over 8 KiB")
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
				return "", false, errors.New("body must be application/json")
			}
			var req struct {
				RefreshToken *string `json:"refresh_token"`
			}
			if json.Unmarshal(body, &req) != nil {
				return "", false, errors.New("body is not a JSON object with a refresh_token string")
			}
			if req.RefreshToken != nil {
				return *req.RefreshToken, false, nil
			}
		}
	}
	tok, fromCookie = g.inlineCredential(r)
	return tok, fromCookie, nil
}

// originAllowed guards cookie-authenticated refresh and logout against
// cross-site requests: a browser's Origin must be the site itself or one of
// allowed_origins. Requests without Origin are not from a browser's
// cross-origin fetch and pass.
func (g *Gate) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if u, err := url.Parse(o); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.Contains(g.Session.AllowedOrigins, o)
}

func (g *Gate) refreshCookie(value string, until time.Time) *http.Cookie {
	c := &http.Cookie{
		Name: g.Session.Cookie.Name, Value: value, Path: g.Session.Cookie.Path, Domain: g.Session.Cookie.Domain,
		HttpOnly: true, Secure: true,
	}
	switch strings.ToLower(g.Session.Cookie.SameSite) {
	case "lax":
		c.SameSite = http.SameSiteLaxMode
	case "none":
		c.SameSite = http.SameSiteNoneMode
	default:
		c.SameSite = http.SameSiteStrictMode
	}
	if value == "" {
		c.MaxAge = -1
	} else {
		c.MaxAge = max(int(time.Until(until).Seconds()), 1)
	}
	return c
}

func (g *Gate) setRefreshCookie(w http.ResponseWriter, value string, until time.Time) {
	w.Header().Add("Set-Cookie", g.refreshCookie(value, until).String())
}

// refreshAnswer is the refresh route's answer, shaped like an OAuth token
// endpoint's (RFC 6749 s5.1).
type refreshAnswer struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	ExpiresIn        int64  `json:"expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	RefreshExpiresIn int64  `json:"refresh_expires_in,omitempty"`
}

// countRefresh records a refresh attempt's result and what it did to the
// session.
func (g *Gate) countRefresh(mode, result string) {
	collectors.Refreshes.WithLabelValues(mode, result).Inc()
	switch result {
	case session.ReasonReused:
		collectors.ReuseDetected.Inc()
		collectors.SessionsEnded.WithLabelValues("reuse").Inc()
	case session.ReasonIdle, session.ReasonLifetime:
		collectors.SessionsEnded.WithLabelValues(result).Inc()
	}
}

// refreshResult maps a Refresh error to its metric result: the refusal's
// reason, or unavailable for a store failure (and anything unexpected).
func refreshResult(err error) string {
	var ref *session.Refusal
	if errors.As(err, &ref) {
		return ref.Reason
	}
	return "unavailable"
}

// credentialRequest reads the refresh credential of a refresh or logout
// request, answering the request itself (405, 400, 403) when it cannot go
// on; ok is false then.
func (g *Gate) credentialRequest(w http.ResponseWriter, r *http.Request) (tok string, fromCookie, ok bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, oauthError{Error: "invalid_request", Description: "use POST"})
		return "", false, false
	}
	tok, fromCookie, err := g.refreshCredential(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: err.Error()})
		return "", false, false
	}
	if fromCookie && !g.originAllowed(r) {
		writeJSON(w, http.StatusForbidden, oauthError{Error: "invalid_request", Description: "origin not allowed"})
		return "", false, false
	}
	return tok, fromCookie, true
}

func (g *Gate) serveRefresh(w http.ResponseWriter, r *http.Request) error {
	tok, fromCookie, ok := g.credentialRequest(w, r)
	if !ok {
		return nil
	}
	if tok == "" {
		g.countRefresh("endpoint", "missing")
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "no refresh token", Reason: "missing"})
		return nil
	}
	grant, err := g.sessions.Refresh(r.Context(), tok)
	if err != nil {
		if result, refused := g.refusedRefresh(w, "endpoint", tok, fromCookie, err); refused {
			writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_grant",
				Description: "the refresh token cannot be used: " + result, Reason: result})
		}
		return nil
	}
	g.countRefresh("endpoint", grant.Outcome.String())
	now := time.Now()
	ans := refreshAnswer{
		AccessToken: grant.AccessToken, TokenType: "Bearer",
		ExpiresIn: int64(grant.AccessExpires.Sub(now).Seconds()),
	}
	if fromCookie {
		g.setRefreshCookie(w, grant.RefreshToken, grant.RefreshExpires)
	}
	if !fromCookie || g.Session.BodyFields {
		ans.RefreshToken = grant.RefreshToken
		ans.RefreshExpiresIn = int64(grant.RefreshExpires.Sub(now).Seconds())
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// refusedRefresh handles a failed refresh of either mode: it counts and
// logs it, answers 503 itself for a store failure, and clears a refused
// cookie. refused is true when the caller still has to answer the refusal
// (with result as its reason).
func (g *Gate) refusedRefresh(w http.ResponseWriter, mode, tok string, fromCookie bool, err error) (result string, refused bool) {
	result = refreshResult(err)
	g.countRefresh(mode, result)
	g.logRefusedRefresh(mode, tok, result, err)
	if result == "unavailable" {
		unavailable(w)
		return result, false
	}
	if fromCookie {
		g.setRefreshCookie(w, "", time.Time{})
	}
	return result, true
}

func (g *Gate) logRefusedRefresh(mode, tok, result string, err error) {
	level := g.logger.Info
	switch result {
	case session.ReasonReused:
		level = g.logger.Warn
	case "unavailable":
		level = g.logger.Error
	}
	level("refresh token refused", zap.String("mode", mode), zap.String("result", result),
		zap.String("refresh_fp", session.Fingerprint(tok)), zap.Error(err))
}

func (g *Gate) serveLogout(w http.ResponseWriter, r *http.Request) error {
	tok, _, ok := g.credentialRequest(w, r)
	if !ok {
		return nil
	}
	if tok != "" {
		ended, err := g.sessions.Logout(r.Context(), tok)
		if err != nil {
			unavailable(w)
			return nil
		}
		if ended {
			collectors.SessionsEnded.WithLabelValues("logout").Inc()
		}
	}
	// Idempotent: the same answer whether a session ended or none was found.
	g.setRefreshCookie(w, "", time.Time{})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// serveLogin forwards the login request and, when the API answers 2xx JSON
// with a valid access token, opens a session and adds the refresh cookie
// (and, with body_fields, refresh_token and refresh_expires_in) to the
// answer. Everything else of the API's answer is passed on byte for byte.
func (g *Gate) serveLogin(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	decidedPublic.Inc()
	c, err := captureJSON(w, r, next)
	if c == nil || err != nil {
		return err
	}
	raw, ok := field(c.body, g.Session.Login.Field)
	if !ok || c.tooLarge() || len(raw) > token.MaxTokenSize {
		g.logger.Warn("login answer carries no access token to open a session with; passed on unchanged",
			zap.String("field", g.Session.Login.Field), zap.Int("bytes", len(c.body)))
		return c.pass()
	}
	if r.Context().Err() != nil {
		// The client gave up (and will likely retry): opening a session
		// nobody receives would leave an orphan behind.
		return c.pass()
	}
	claims, err := g.verifier.Verify(r.Context(), raw)
	if err != nil {
		// The API signed a token tokengate cannot verify: keys differ.
		g.logger.Error("the API's login token does not verify with tokengate's keys; no session opened",
			zap.Error(err), zap.String("token_fp", fingerprint(raw)))
		return c.pass()
	}
	grant, err := g.sessions.Open(r.Context(), claims)
	if errors.Is(err, session.ErrUnavailable) {
		g.logger.Error("opening session", zap.Error(err))
		unavailable(w)
		return nil
	}
	if err != nil {
		g.logger.Error("opening session", zap.Error(err))
		return c.pass()
	}
	collectors.SessionsStarted.Inc()
	body := c.body
	if g.Session.BodyFields {
		extra := fmt.Appendf(nil, `{"refresh_token":%q,"refresh_expires_in":%d}`,
			grant.RefreshToken, int64(time.Until(grant.RefreshExpires).Seconds()))
		if spliced, ok := spliceFields(body, extra); ok {
			body = spliced
		} else {
			g.logger.Warn("login answer already has refresh fields; body left as is")
		}
	}
	g.setRefreshCookie(w, grant.RefreshToken, grant.RefreshExpires)
	w.Header().Set("Cache-Control", "no-store")
	return c.send(w, body)
}

// spliceFields adds the members of extra (a JSON object) to the JSON object
// body just before its closing brace, keeping the API's bytes as they are.
// It refuses when body already has one of those members.
func spliceFields(body, extra []byte) ([]byte, bool) {
	var have, add map[string]json.RawMessage
	if json.Unmarshal(body, &have) != nil || json.Unmarshal(extra, &add) != nil {
		return nil, false
	}
	for k := range add {
		if _, dup := have[k]; dup {
			return nil, false
		}
	}
	end := bytes.LastIndexByte(body, '}')
	inner := bytes.TrimSpace(extra[1 : len(extra)-1])
	out := make([]byte, 0, len(body)+len(inner)+1)
	out = append(out, bytes.TrimRightFunc(body[:end], isSpace)...)
	if len(have) > 0 {
		out = append(out, ',')
	}
	out = append(out, inner...)
	return append(out, body[end:]...), true
}

func isSpace(r rune) bool { return r == ' ' || r == '\n' || r == '\r' || r == '\t' }
