package store

import "time"

// JobGrant lets a long-running job's status be polled after its owner's
// access token has expired: tokengate records it when the job starts.
type JobGrant struct {
	// ID names the grant: a hash of the job kind and the job id.
	ID string `json:"id"`
	// JobID is the API's job id.
	JobID string `json:"job_id"`
	// Subject is the owner's sub claim.
	Subject string `json:"sub"`
	// Claims is the owner's claims snapshot, to mint access tokens for the
	// status route from; Alg and KID name the key to mint with.
	Claims []byte `json:"claims"`
	Alg    string `json:"alg"`
	KID    string `json:"kid,omitempty"`
	// Created and Expires bound the grant's life.
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// liveGrant returns g when it has not expired at now.
func liveGrant(g *JobGrant, now time.Time) (*JobGrant, error) {
	if g == nil || !now.Before(g.Expires) {
		return nil, ErrNotFound
	}
	return g, nil
}
