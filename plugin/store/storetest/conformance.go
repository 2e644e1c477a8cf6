// Package storetest is the conformance suite every store backend passes,
// and a throwaway redis-server for tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/store"
)

// Opener returns a fresh, empty store for one test.
type Opener func(t *testing.T) store.Store

// Timing of the families the suite creates.
const (
	Idle     = time.Hour
	Lifetime = 8 * time.Hour
	Grace    = 10 * time.Second
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// NewFamily returns a family created at now whose current token is "<id>/0".
func NewFamily(id string, now time.Time) *store.Family {
	return &store.Family{
		ID: id, Subject: "user-1", Claims: []byte(`{"sub":"user-1","role":"user"}`),
		Alg: "HS256", KID: "k1", AccessTTL: time.Hour,
		Created: now, LastUsed: now, Absolute: now.Add(Lifetime), Idle: Idle,
		Current: hash(id + "/0"),
	}
}

// rotation spends token <id>/<from> at now. A token's successor is fixed,
// as the session package derives it: <id>/<from+1>. to names a token
// presented with a successor of its own choosing (a forgery) when it is not
// from+1.
func rotation(id string, from, to int, now time.Time) store.Rotation {
	return store.Rotation{
		ID: id, Presented: hash(fmt.Sprintf("%s/%d", id, from)), Next: hash(fmt.Sprintf("%s/%d", id, to)),
		Now: now, Grace: Grace,
	}
}

// sameJSON compares two JSON documents by value: a store may keep claims
// in another member order.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func mustCreate(t *testing.T, s store.Store, f *store.Family) {
	t.Helper()
	if err := s.Create(context.Background(), f); err != nil {
		t.Fatalf("create: %v", err)
	}
}

func mustRotate(t *testing.T, s store.Store, r store.Rotation, want store.Outcome) store.Result {
	t.Helper()
	res, err := s.Rotate(context.Background(), r)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if res.Outcome != want {
		t.Fatalf("rotate outcome %v, want %v", res.Outcome, want)
	}
	return res
}

// Run runs the conformance suite against the stores open returns.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)

	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := open(t)
		f := NewFamily("fam-a", t0)
		mustCreate(t, s, f)
		got, err := s.Get(ctx, "fam-a")
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != f.Subject || !sameJSON(got.Claims, f.Claims) || got.Alg != "HS256" || got.KID != "k1" ||
			got.AccessTTL != time.Hour || !got.Absolute.Equal(f.Absolute) || !got.LastUsed.Equal(t0) ||
			got.Idle != Idle || !bytes.Equal(got.Current, f.Current) || got.Generation != 0 || got.Revoked {
			t.Fatalf("round trip changed the family:\n got %+v\nwant %+v", got, f)
		}
		if err := s.Create(ctx, NewFamily("fam-a", t0)); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		if _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get missing: %v, want ErrNotFound", err)
		}
	})

	t.Run("RotateSpendsCurrent", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-r", t0))
		now := t0.Add(time.Minute)
		res := mustRotate(t, s, rotation("fam-r", 0, 1, now), store.Rotated)
		if res.Family == nil || res.Family.Generation != 1 || !bytes.Equal(res.Family.Current, hash("fam-r/1")) ||
			res.Family.Subject != "user-1" || !sameJSON(res.Family.Claims, []byte(`{"sub":"user-1","role":"user"}`)) {
			t.Fatalf("rotated family %+v", res.Family)
		}
		got, _ := s.Get(ctx, "fam-r")
		if !bytes.Equal(got.Current, hash("fam-r/1")) || !got.PrevAt.Equal(now) || !got.LastUsed.Equal(now) {
			t.Fatalf("stored after rotation: %+v", got)
		}
		mustRotate(t, s, rotation("fam-r", 1, 2, now.Add(time.Minute)), store.Rotated)
	})

	t.Run("ReplayInsideGraceGetsSameSuccessor", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-g", t0))
		mustRotate(t, s, rotation("fam-g", 0, 1, t0), store.Rotated)
		res := mustRotate(t, s, rotation("fam-g", 0, 1, t0.Add(Grace)), store.Grace)
		if !bytes.Equal(res.Family.Current, hash("fam-g/1")) {
			t.Fatal("grace answer does not carry the family whose current token is the successor")
		}
		got, _ := s.Get(ctx, "fam-g")
		if got.Generation != 1 || !bytes.Equal(got.Current, hash("fam-g/1")) || got.Revoked {
			t.Fatalf("a grace replay changed the family: %+v", got)
		}
		mustRotate(t, s, rotation("fam-g", 1, 2, t0.Add(Grace)), store.Rotated)
	})

	t.Run("ReplayAfterGraceRevokesFamily", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-x", t0))
		mustRotate(t, s, rotation("fam-x", 0, 1, t0), store.Rotated)
		mustRotate(t, s, rotation("fam-x", 0, 1, t0.Add(Grace+time.Millisecond)), store.Reused)
		// The newest token dies with the family.
		mustRotate(t, s, rotation("fam-x", 1, 3, t0.Add(Grace+2*time.Millisecond)), store.Revoked)
		got, err := s.Get(ctx, "fam-x")
		if err != nil || !got.Revoked {
			t.Fatalf("family after reuse: %+v, %v", got, err)
		}
	})

	t.Run("OlderTokenRevokesFamilyEvenInsideGrace", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-o", t0))
		mustRotate(t, s, rotation("fam-o", 0, 1, t0), store.Rotated)
		mustRotate(t, s, rotation("fam-o", 1, 2, t0.Add(time.Second)), store.Rotated)
		mustRotate(t, s, rotation("fam-o", 0, 1, t0.Add(2*time.Second)), store.Reused)
		mustRotate(t, s, rotation("fam-o", 2, 3, t0.Add(3*time.Second)), store.Revoked)
	})

	t.Run("UnknownFamilyAndForeignToken", func(t *testing.T) {
		s := open(t)
		mustRotate(t, s, rotation("fam-none", 0, 1, t0), store.Unknown)
		mustCreate(t, s, NewFamily("fam-f", t0))
		mustRotate(t, s, rotation("fam-f", 0, 1, t0), store.Rotated)
		// A guessed token, even claiming the current token as its successor
		// inside the grace... is a forgery only if its successor is not
		// derived from it; the store cannot tell, so that case is the
		// session package's. A guessed token with another successor:
		r := rotation("fam-f", 0, 1, t0)
		r.Presented, r.Next = hash("guessed"), hash("guessed/next")
		mustRotate(t, s, r, store.Reused)
	})

	t.Run("IdleExpiry", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-i", t0))
		mustRotate(t, s, rotation("fam-i", 0, 1, t0.Add(Idle-time.Millisecond)), store.Rotated)
		last := t0.Add(Idle - time.Millisecond)
		res := mustRotate(t, s, rotation("fam-i", 1, 2, last.Add(Idle)), store.Expired)
		if res.EndReason != "idle" {
			t.Fatalf("end reason %q, want idle", res.EndReason)
		}
		if _, err := s.Get(ctx, "fam-i"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired family still stored: %v", err)
		}
	})

	t.Run("AbsoluteExpiry", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-l", t0))
		now, gen := t0, 0
		for now.Add(Idle / 2).Before(t0.Add(Lifetime)) {
			now = now.Add(Idle / 2)
			mustRotate(t, s, rotation("fam-l", gen, gen+1, now), store.Rotated)
			gen++
		}
		res := mustRotate(t, s, rotation("fam-l", gen, gen+1, t0.Add(Lifetime)), store.Expired)
		if res.EndReason != "lifetime" {
			t.Fatalf("end reason %q, want lifetime", res.EndReason)
		}
	})

	t.Run("DeleteIsLogout", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-d", t0))
		if err := s.Delete(ctx, "fam-d"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "fam-d"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		mustRotate(t, s, rotation("fam-d", 0, 1, t0), store.Unknown)
	})

	t.Run("ProbeNeverRevokes", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-p", t0))
		mustRotate(t, s, rotation("fam-p", 0, 1, t0), store.Rotated)
		probe := rotation("fam-p", 0, 1, t0.Add(Grace+time.Second))
		probe.Probe = true
		mustRotate(t, s, probe, store.Stale)
		// Inside the grace a probe gets the grace answer like anyone.
		inGrace := rotation("fam-p", 0, 1, t0.Add(Grace))
		inGrace.Probe = true
		mustRotate(t, s, inGrace, store.Grace)
		// A probe with the current token rotates.
		cur := rotation("fam-p", 1, 2, t0.Add(Grace+2*time.Second))
		cur.Probe = true
		mustRotate(t, s, cur, store.Rotated)
		got, _ := s.Get(ctx, "fam-p")
		if got.Revoked || got.Generation != 2 {
			t.Fatalf("after probes: revoked %v gen %d", got.Revoked, got.Generation)
		}
	})

	t.Run("BridgesAreWrittenWithTheRotation", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-b", t0))
		peek, err := s.Peek(ctx, "fam-b", hash("access-0"), t0)
		if err != nil || peek.Outcome != store.Live || peek.Bridge != nil || peek.Family.Subject != "user-1" {
			t.Fatalf("peek before any bridge: %v %+v %v", peek.Outcome, peek.Bridge, err)
		}
		r := rotation("fam-b", 0, 1, t0)
		r.BridgeKey, r.BridgeSealed = hash("access-0"), []byte("bridge one")
		mustRotate(t, s, r, store.Rotated)
		// A concurrent rotation by the same token sees the bridge written.
		again := rotation("fam-b", 0, 1, t0.Add(time.Second))
		again.BridgeKey, again.BridgeSealed = hash("access-0"), []byte("bridge two")
		res := mustRotate(t, s, again, store.Grace)
		if string(res.Bridge) != "bridge one" {
			t.Fatalf("grace bridge %q, want the first rotation's", res.Bridge)
		}
		peek, err = s.Peek(ctx, "fam-b", hash("access-0"), t0.Add(time.Second))
		if err != nil || peek.Outcome != store.Live || string(peek.Bridge) != "bridge one" {
			t.Fatalf("peek: %v %q %v", peek.Outcome, peek.Bridge, err)
		}
		if other, _ := s.Peek(ctx, "fam-b", hash("access-other"), t0); other.Bridge != nil {
			t.Fatal("a bridge answered for another access token")
		}
		// A later rotation replaces the bridge.
		next := rotation("fam-b", 1, 2, t0.Add(time.Minute))
		next.BridgeKey, next.BridgeSealed = hash("access-0"), []byte("bridge three")
		mustRotate(t, s, next, store.Rotated)
		if peek, _ = s.Peek(ctx, "fam-b", hash("access-0"), t0.Add(time.Minute)); string(peek.Bridge) != "bridge three" {
			t.Fatalf("bridge after the next rotation %q", peek.Bridge)
		}
	})

	t.Run("PeekReportsEndedFamiliesWithoutChange", func(t *testing.T) {
		s := open(t)
		if res, err := s.Peek(ctx, "fam-none", nil, t0); err != nil || res.Outcome != store.Unknown {
			t.Fatalf("peek unknown: %v %v", res.Outcome, err)
		}
		mustCreate(t, s, NewFamily("fam-e", t0))
		if res, _ := s.Peek(ctx, "fam-e", nil, t0.Add(Idle)); res.Outcome != store.Expired {
			t.Fatalf("peek after idle: %v", res.Outcome)
		}
		mustCreate(t, s, NewFamily("fam-v", t0))
		mustRotate(t, s, rotation("fam-v", 0, 1, t0), store.Rotated)
		mustRotate(t, s, rotation("fam-v", 0, 1, t0.Add(time.Hour/2)), store.Reused)
		if res, _ := s.Peek(ctx, "fam-v", nil, t0.Add(time.Hour/2)); res.Outcome != store.Revoked {
			t.Fatalf("peek revoked: %v", res.Outcome)
		}
	})

	t.Run("JobGrants", func(t *testing.T) {
		s := open(t)
		g := &store.JobGrant{ID: "grant-1", JobID: "job_42", Subject: "user-1", Claims: []byte(`{"sub":"user-1"}`),
			Alg: "HS256", KID: "k1", Created: t0, Expires: t0.Add(48 * time.Hour)}
		if err := s.PutGrant(ctx, g); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetGrant(ctx, "grant-1", t0.Add(time.Hour))
		if err != nil || got.JobID != "job_42" || got.Subject != "user-1" || !bytes.Equal(got.Claims, g.Claims) ||
			got.Alg != "HS256" || got.KID != "k1" || !got.Expires.Equal(g.Expires) {
			t.Fatalf("grant round trip: %+v %v", got, err)
		}
		if _, err := s.GetGrant(ctx, "grant-1", t0.Add(48*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("grant past its expiry: %v", err)
		}
		if _, err := s.GetGrant(ctx, "nope", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing grant: %v", err)
		}
		// Shortening moves expiry earlier, never later.
		if err := s.ShortenGrant(ctx, "grant-1", t0.Add(72*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetGrant(ctx, "grant-1", t0); !got.Expires.Equal(g.Expires) {
			t.Fatalf("shortening to a later time moved expiry to %v", got.Expires)
		}
		if err := s.ShortenGrant(ctx, "grant-1", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetGrant(ctx, "grant-1", t0.Add(time.Hour)); err != nil || !got.Expires.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("after shortening: %+v %v", got, err)
		}
		if _, err := s.GetGrant(ctx, "grant-1", t0.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("shortened grant still live: %v", err)
		}
		if err := s.ShortenGrant(ctx, "nope", t0); err != nil {
			t.Fatalf("shortening a missing grant: %v", err)
		}
	})

	t.Run("ListsFamiliesOfASubject", func(t *testing.T) {
		s := open(t)
		for i, sub := range []string{"alice", "bob", "alice"} {
			f := NewFamily(fmt.Sprintf("fam-s%d", i), t0)
			f.Subject = sub
			mustCreate(t, s, f)
		}
		fams, err := store.Families(ctx, s, "alice")
		if err != nil || len(fams) != 2 {
			t.Fatalf("alice's families: %d %v", len(fams), err)
		}
		for _, f := range fams {
			if f.Subject != "alice" || (f.ID != "fam-s0" && f.ID != "fam-s2") {
				t.Fatalf("listed %+v", f)
			}
		}
		if fams, _ := store.Families(ctx, s, "carol"); len(fams) != 0 {
			t.Fatalf("carol has %d families", len(fams))
		}
	})

	t.Run("ConcurrentRotationsYieldOneSuccessor", func(t *testing.T) {
		s := open(t)
		mustCreate(t, s, NewFamily("fam-c", t0))
		const n = 50
		results := make([]store.Result, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				results[i], errs[i] = s.Rotate(ctx, rotation("fam-c", 0, 1, t0.Add(time.Second)))
			}(i)
		}
		close(start)
		wg.Wait()
		rotated := 0
		for i, r := range results {
			if errs[i] != nil {
				t.Fatalf("rotation %d: %v", i, errs[i])
			}
			if r.Outcome == store.Rotated {
				rotated++
			}
			if (r.Outcome != store.Rotated && r.Outcome != store.Grace) || !bytes.Equal(r.Family.Current, hash("fam-c/1")) {
				t.Fatalf("rotation %d: %v, want rotated or grace with the one successor", i, r.Outcome)
			}
		}
		if rotated != 1 {
			t.Fatalf("%d rotations succeeded, want exactly 1", rotated)
		}
		got, _ := s.Get(ctx, "fam-c")
		if got.Generation != 1 || got.Revoked {
			t.Fatalf("family after concurrent rotations: gen %d revoked %v", got.Generation, got.Revoked)
		}
	})
}
