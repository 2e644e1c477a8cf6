// Package metrics holds tokengate's Prometheus collectors. They are created
// once per process, so counters survive a Caddy config reload, and Register
// adds them to each new registry Caddy hands a provisioning module. Every
// label value comes from a fixed set: never a user, a token, a job id or a path.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "caddy"
	subsystem = "tokengate"
)

// Decision label values for Decisions.
const (
	// DecisionPublic: the route needs no token.
	DecisionPublic = "public"
	// DecisionAllowed: a valid token let the request through.
	DecisionAllowed = "allowed"
	// DecisionRejected: the request was answered 401.
	DecisionRejected = "rejected"
	// DecisionRefreshed: an expired access token was refreshed in flight
	// and the request went on.
	DecisionRefreshed = "refreshed"
)

// Decisions lists the decision label values.
var Decisions = []string{DecisionPublic, DecisionAllowed, DecisionRejected, DecisionRefreshed}

// Set is every tokengate collector.
type Set struct {
	// Rejections counts 401 answers by reason (caddy_tokengate_rejections_total).
	Rejections *prometheus.CounterVec
	// Decisions counts requests by what tokengate decided
	// (caddy_tokengate_decisions_total).
	Decisions *prometheus.CounterVec
	// TokenRemaining observes, for each accepted token, the seconds it had
	// left (caddy_tokengate_token_remaining_seconds).
	TokenRemaining prometheus.Histogram
	// ExpiredTokenAge observes, for each correctly signed but expired token,
	// the seconds since it expired (caddy_tokengate_expired_token_age_seconds).
	ExpiredTokenAge prometheus.Histogram
	// WeakKey is the number of running tokengate handlers that accepted a
	// weak HMAC secret through allow_weak_key (caddy_tokengate_weak_key).
	WeakKey prometheus.Gauge

	// Refreshes counts refresh attempts by mode (endpoint, inline) and
	// result (caddy_tokengate_refreshes_total).
	Refreshes *prometheus.CounterVec
	// ReuseDetected counts replays of spent refresh tokens, each of which
	// revoked a family (caddy_tokengate_refresh_reuse_detected_total).
	ReuseDetected prometheus.Counter
	// SessionsStarted counts sessions opened at login
	// (caddy_tokengate_sessions_started_total).
	SessionsStarted prometheus.Counter
	// SessionsEnded counts sessions ended, by reason
	// (caddy_tokengate_sessions_ended_total).
	SessionsEnded *prometheus.CounterVec
	// StoreErrors counts failed store operations by op
	// (caddy_tokengate_store_errors_total).
	StoreErrors *prometheus.CounterVec
	// StoreDuration observes store operation latency by op
	// (caddy_tokengate_store_duration_seconds).
	StoreDuration *prometheus.HistogramVec
	// LogoutsPrevented counts requests that would have been 401 and were
	// served by an inline refresh (caddy_tokengate_logouts_prevented_total).
	LogoutsPrevented prometheus.Counter
	// UpstreamUnauthorized counts upstream 401 answers to requests tokengate
	// had authorized: a sign that the API and tokengate disagree on keys
	// (caddy_tokengate_upstream_unauthorized_total).
	UpstreamUnauthorized prometheus.Counter
	// JobGrants counts job grants recorded at job start
	// (caddy_tokengate_job_grants_total).
	JobGrants prometheus.Counter
	// JobStatusRequests counts authorized job status requests by how they
	// were authorized (caddy_tokengate_job_status_requests_total).
	JobStatusRequests *prometheus.CounterVec
}

// JobStatusAuths are the label values of JobStatusRequests: a valid (or
// inline-refreshed) access token, a job token, the owner's expired token.
var JobStatusAuths = []string{"access", "job_token", "expired_owner"}

// Label values of the session metrics.
var (
	// RefreshModes: endpoint is the refresh route; inline is a refresh done
	// in flight for a request carrying an expired access token.
	RefreshModes = []string{"endpoint", "inline"}
	// RefreshResults: rotated and grace succeeded; the others did not.
	// bridged is an inline request served by an earlier inline refresh of
	// the same expired token (no rotation).
	RefreshResults = []string{"rotated", "grace", "bridged", "missing", "malformed", "unknown", "reused", "revoked",
		"idle", "lifetime", "key_gone", "subject_mismatch", "stale", "unavailable"}
	// EndReasons are why sessions end.
	EndReasons = []string{"logout", "reuse", "idle", "lifetime"}
	// StoreOps are the store operations timed.
	StoreOps = []string{"create", "get", "rotate", "peek", "delete", "put_grant", "get_grant", "shorten_grant"}
)

// lifetimeBuckets span 1 minute to 8 hours: the API's 1h token, the 8h
// token the seed considered, and the minutes in between where refresh matters.
var lifetimeBuckets = []float64{60, 300, 600, 900, 1800, 2700, 3600, 7200, 14400, 28800}

// New creates the collectors. Call it once per process (Default does).
func New(reasons []string) *Set {
	s := &Set{
		Rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "rejections_total",
			Help: "Requests answered 401 by tokengate, by reason.",
		}, []string{"reason"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "decisions_total",
			Help: "Requests seen by tokengate, by decision (public, allowed, rejected).",
		}, []string{"decision"}),
		TokenRemaining: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "token_remaining_seconds",
			Help:    "Seconds an accepted access token had left before it expired.",
			Buckets: lifetimeBuckets,
		}),
		ExpiredTokenAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "expired_token_age_seconds",
			Help:    "Seconds since expiry of correctly signed but expired access tokens presented.",
			Buckets: lifetimeBuckets,
		}),
		WeakKey: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "weak_key",
			Help: "Running tokengate handlers that accepted a weak HMAC secret through allow_weak_key.",
		}),
	}
	s.Refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "refreshes_total",
		Help: "Refresh token uses, by mode (endpoint, inline) and result.",
	}, []string{"mode", "result"})
	s.ReuseDetected = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "refresh_reuse_detected_total",
		Help: "Spent refresh tokens presented again after the reuse grace; each revoked its session family.",
	})
	s.SessionsStarted = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "sessions_started_total",
		Help: "Sessions opened on a successful login.",
	})
	s.SessionsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "sessions_ended_total",
		Help: "Sessions ended, by reason (logout, reuse, idle, lifetime).",
	}, []string{"reason"})
	s.StoreErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "store_errors_total",
		Help: "Session store operations that failed (store unreachable or unreadable), by operation.",
	}, []string{"op"})
	s.StoreDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "store_duration_seconds",
		Help:    "Session store operation latency, by operation.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"op"})
	s.LogoutsPrevented = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "logouts_prevented_total",
		Help: "Requests with an expired access token that were served (inline refresh or job grant) instead of answered 401.",
	})
	s.UpstreamUnauthorized = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "upstream_unauthorized_total",
		Help: "Upstream 401 answers to requests tokengate authorized: tokengate and the API disagree on keys or claims.",
	})
	s.JobGrants = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "job_grants_total",
		Help: "Job grants recorded when a long-running job started.",
	})
	s.JobStatusRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: "job_status_requests_total",
		Help: "Job status requests let through, by how they were authorized (access, job_token, expired_owner).",
	}, []string{"auth"})
	for _, a := range JobStatusAuths {
		s.JobStatusRequests.WithLabelValues(a)
	}
	for _, m := range RefreshModes {
		for _, r := range RefreshResults {
			s.Refreshes.WithLabelValues(m, r)
		}
	}
	for _, r := range EndReasons {
		s.SessionsEnded.WithLabelValues(r)
	}
	for _, op := range StoreOps {
		s.StoreErrors.WithLabelValues(op)
		s.StoreDuration.WithLabelValues(op)
	}
	for _, r := range reasons {
		s.Rejections.WithLabelValues(r)
	}
	for _, d := range Decisions {
		s.Decisions.WithLabelValues(d)
	}
	return s
}

func (s *Set) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.Rejections, s.Decisions, s.TokenRemaining, s.ExpiredTokenAge, s.WeakKey,
		s.Refreshes, s.ReuseDetected, s.SessionsStarted, s.SessionsEnded, s.StoreErrors, s.StoreDuration,
		s.LogoutsPrevented, s.UpstreamUnauthorized, s.JobGrants, s.JobStatusRequests}
}

// Register adds every collector to reg. A collector already there (the same
// registry provisioned twice) is not an error; a nil reg registers nothing.
func (s *Set) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
