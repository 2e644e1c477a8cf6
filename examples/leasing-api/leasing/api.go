// Package leasing is a stand-in for the seed's NestJS leasing API: it signs
// its own HS256 access tokens at login, has no refresh tokens, runs renewal
// syncs as background jobs, and guards every non-auth route with its own JWT
// check, as the real API's JwtAuthGuard does. tokengate's tests put it behind
// the proxy to prove that what passes the proxy is what the API accepts.
package leasing

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DemoOTP is the one-time password every login accepts: there is no mail
// server behind this stand-in.
const DemoOTP = "123456"

// Config is the stand-in's configuration, the seed's .env in Go.
type Config struct {
	// Secret signs and verifies access tokens (JWT_SECRET).
	Secret []byte
	// AccessTTL is the access token lifetime (JWT_EXPIRES_IN); default 1h.
	AccessTTL time.Duration
	// JobDuration is how long a renewals sync runs; default 30s.
	JobDuration time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API is the stand-in's HTTP handler.
type API struct {
	cfg  Config
	mux  *http.ServeMux
	mu   sync.Mutex
	jobs map[string]*job
}

type job struct {
	owner   string
	started time.Time
}

// New builds the API. A zero AccessTTL or JobDuration takes its default.
func New(cfg Config) *API {
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = time.Hour
	}
	if cfg.JobDuration <= 0 {
		cfg.JobDuration = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &API{cfg: cfg, mux: http.NewServeMux(), jobs: map[string]*job{}}
	a.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("POST /auth/send-otp", a.sendOTP)
	a.mux.HandleFunc("POST /auth/verify-otp", a.verifyOTP)
	a.mux.HandleFunc("GET /leasing/renewals", a.guard(a.renewals))
	a.mux.HandleFunc("POST /leasing/renewals/sync", a.guard(a.startSync))
	a.mux.HandleFunc("GET /leasing/renewals/sync/{jobId}", a.guard(a.syncStatus))
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// User is the identity in the API's tokens.
type User struct {
	ID    string `json:"sub"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

type credentials struct {
	Email string `json:"email"`
	OTP   string `json:"otp"`
}

func (a *API) sendOTP(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if json.NewDecoder(r.Body).Decode(&c) != nil || !strings.Contains(c.Email, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "email is required"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "OTP sent"})
}

func (a *API) verifyOTP(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if json.NewDecoder(r.Body).Decode(&c) != nil || !strings.Contains(c.Email, "@") {
		writeJSON(w, http.StatusBadRequest, map[string]any{"statusCode": 400, "message": "email and otp are required"})
		return
	}
	if c.OTP != DemoOTP {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "Invalid OTP"})
		return
	}
	tok, err := a.Sign(UserFor(c.Email))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"statusCode": 500, "message": "signing failed"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"access_token": tok})
}

// UserFor derives a stable user for an email: the id is a hash of it, and
// addresses starting with "admin" get the admin role.
func UserFor(email string) User {
	sum := sha256.Sum256([]byte(strings.ToLower(email)))
	role := "user"
	if strings.HasPrefix(email, "admin") {
		role = "admin"
	}
	return User{ID: "u_" + hex.EncodeToString(sum[:6]), Email: email, Role: role}
}

// Sign issues an access token for u, as the API's JwtService.sign does.
func (a *API) Sign(u User) (string, error) {
	now := a.cfg.Now()
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   u.ID,
		"email": u.Email,
		"role":  u.Role,
		"iat":   now.Unix(),
		"exp":   now.Add(a.cfg.AccessTTL).Unix(),
	}).SignedString(a.cfg.Secret)
}

// guard is the API's JwtAuthGuard: Bearer HS256 token with exp, or 401.
func (a *API) guard(next func(http.ResponseWriter, *http.Request, User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			unauthorized(w)
			return
		}
		var claims struct {
			Email string `json:"email"`
			Role  string `json:"role"`
			jwt.RegisteredClaims
		}
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(a.cfg.Now))
		if err != nil || claims.Subject == "" {
			unauthorized(w)
			return
		}
		next(w, r, User{ID: claims.Subject, Email: claims.Email, Role: claims.Role})
	}
}

func unauthorized(w http.ResponseWriter) {
	writeJSON(w, http.StatusUnauthorized, map[string]any{"statusCode": 401, "message": "Unauthorized"})
}

func (a *API) renewals(w http.ResponseWriter, _ *http.Request, u User) {
	writeJSON(w, http.StatusOK, map[string]any{
		"user": u.ID,
		"renewals": []map[string]any{
			{"id": "r-1001", "tenant": "Acme Stores", "unit": "A-12", "due": "2027-01-31"},
			{"id": "r-1002", "tenant": "Blue Cafe", "unit": "B-03", "due": "2027-02-28"},
		},
	})
}

func (a *API) startSync(w http.ResponseWriter, _ *http.Request, u User) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := "job_" + hex.EncodeToString(b[:])
	a.mu.Lock()
	a.jobs[id] = &job{owner: u.ID, started: a.cfg.Now()}
	a.mu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]string{"jobId": id, "message": "Job started"})
}

// JobStatus is the answer of the job status route.
type JobStatus struct {
	Status   string `json:"status"`
	Progress int    `json:"progress"`
}

func (a *API) syncStatus(w http.ResponseWriter, r *http.Request, u User) {
	a.mu.Lock()
	j, ok := a.jobs[r.PathValue("jobId")]
	a.mu.Unlock()
	if !ok || j.owner != u.ID {
		writeJSON(w, http.StatusNotFound, map[string]any{"statusCode": 404, "message": "job not found"})
		return
	}
	elapsed := a.cfg.Now().Sub(j.started)
	st := JobStatus{Status: "running", Progress: int(100 * elapsed / a.cfg.JobDuration)}
	if elapsed >= a.cfg.JobDuration {
		st = JobStatus{Status: "completed", Progress: 100}
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ConfigFromEnv reads the seed's variables: JWT_SECRET (required),
// ACCESS_TTL (or JWT_EXPIRES_IN) and JOB_DURATION as Go durations.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := Config{Secret: []byte(getenv("JWT_SECRET"))}
	if len(cfg.Secret) == 0 {
		return cfg, errors.New("JWT_SECRET is not set")
	}
	ttl := getenv("ACCESS_TTL")
	if ttl == "" {
		ttl = getenv("JWT_EXPIRES_IN")
	}
	for _, v := range []struct {
		name, val string
		dst       *time.Duration
	}{{"ACCESS_TTL", ttl, &cfg.AccessTTL}, {"JOB_DURATION", getenv("JOB_DURATION"), &cfg.JobDuration}} {
		if v.val == "" {
			continue
		}
		d, err := time.ParseDuration(v.val)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("%s=%q is not a positive duration such as 1h or 30s", v.name, v.val)
		}
		*v.dst = d
	}
	return cfg, nil
}
