package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

func TestConformance_Memory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory(nil) })
}

func TestConformance_File(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenFile(filepath.Join(t.TempDir(), "sessions.db"), nil, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestConformance_Redis(t *testing.T) {
	client, prefix := storetest.SharedRedis(t)
	n := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		n++
		return store.NewRedis(client, fmt.Sprintf("%s%d:", prefix, n), false)
	})
}

// TestRedis_TwoInstancesBehaveAsOne: two replicas, two clients, one Redis.
func TestRedis_TwoInstancesBehaveAsOne(t *testing.T) {
	srv := storetest.StartRedis(t)
	a := store.NewRedis(srv.Client(), "tg:", false)
	b := store.NewRedis(srv.Client(), "tg:", false)
	ctx := context.Background()
	t0 := time.Now()
	if err := a.Create(ctx, storetest.NewFamily("fam", t0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, storetest.NewFamily("fam", t0)); err != store.ErrExists {
		t.Fatalf("create on the other replica: %v, want ErrExists", err)
	}
	rot := func(s store.Store, from, to int, at time.Time) store.Outcome {
		r := store.Rotation{ID: "fam", Presented: sum("fam", from), Next: sum("fam", to), Now: at, Grace: storetest.Grace}
		res, err := s.Rotate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return res.Outcome
	}
	if o := rot(a, 0, 1, t0); o != store.Rotated {
		t.Fatalf("rotate on a: %v", o)
	}
	if o := rot(b, 0, 1, t0.Add(time.Second)); o != store.Grace {
		t.Fatalf("replay on b inside grace: %v", o)
	}
	if o := rot(b, 0, 1, t0.Add(storetest.Grace+time.Second)); o != store.Reused {
		t.Fatalf("replay on b after grace: %v", o)
	}
	if o := rot(a, 1, 2, t0.Add(storetest.Grace+2*time.Second)); o != store.Revoked {
		t.Fatalf("a sees the revocation made on b: %v", o)
	}
}

// TestRedis_KeysExpireWithTheFamily: Redis forgets a family at its deadline.
func TestRedis_KeysExpireWithTheFamily(t *testing.T) {
	srv := storetest.StartRedis(t)
	c := srv.Client()
	s := store.NewRedis(c, "tg:", false)
	f := storetest.NewFamily("fam-ttl", time.Now())
	f.Idle = 1500 * time.Millisecond
	if err := s.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	ttl := c.PTTL(context.Background(), "tg:fam:{fam-ttl}").Val()
	if ttl <= 0 || ttl > 1500*time.Millisecond {
		t.Fatalf("key TTL %v, want at most the idle timeout", ttl)
	}
}

// TestRedis_Unavailable: a stopped server is an error (503 upstream of
// here), never a verdict on the token.
func TestRedis_Unavailable(t *testing.T) {
	srv := storetest.StartRedis(t)
	s := store.NewRedis(srv.Client(), "tg:", false)
	ctx := context.Background()
	t0 := time.Now()
	if err := s.Create(ctx, storetest.NewFamily("fam-u", t0)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := s.Rotate(ctx, store.Rotation{ID: "fam-u", Presented: sum("fam-u", 0), Next: sum("fam-u", 1), Now: t0}); err == nil {
		t.Fatal("rotate against a stopped Redis returned no error")
	}
	srv.Start()
	res, err := s.Rotate(ctx, store.Rotation{ID: "fam-u", Presented: sum("fam-u", 0), Next: sum("fam-u", 1), Now: t0, Grace: time.Second})
	if err != nil || res.Outcome != store.Unknown {
		// The server was restarted empty (it keeps nothing on disk): the
		// family is gone, which the client learns as unknown, not an error.
		t.Fatalf("after restart: %v %v", res.Outcome, err)
	}
}

// TestFile_SurvivesReopen: the file store is what keeps sessions across a
// Caddy restart.
func TestFile_SurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := store.OpenFile(path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(context.Background(), storetest.NewFamily("fam-p", time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.OpenFile(path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(context.Background(), "fam-p"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

// TestFile_SweepRemovesEnded: ended families do not pile up in the file.
func TestFile_SweepRemovesEnded(t *testing.T) {
	now := time.Now()
	s, err := store.OpenFile(filepath.Join(t.TempDir(), "s.db"), func() time.Time { return now }, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = s.Create(ctx, storetest.NewFamily("old", now.Add(-2*storetest.Idle)))
	_ = s.Create(ctx, storetest.NewFamily("new", now))
	if n, err := s.Sweep(); err != nil || n != 1 {
		t.Fatalf("swept %d (%v), want 1", n, err)
	}
	if _, err := s.Get(ctx, "new"); err != nil {
		t.Fatalf("live family swept: %v", err)
	}
}
