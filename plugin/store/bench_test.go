package store_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/plugin/store"
	"github.com/tokengate/tokengate/plugin/store/storetest"
)

// benchRotate rotates one family's token over and over, one goroutine, and
// reports rotations per second.
func benchRotate(b *testing.B, s store.Store) {
	ctx := context.Background()
	now := time.Now()
	if err := s.Create(ctx, storetest.NewFamily("bench", now)); err != nil {
		b.Fatal(err)
	}
	gen := 0
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		res, err := s.Rotate(ctx, store.Rotation{ID: "bench", Presented: sum("bench", gen), Next: sum("bench", gen+1),
			Now: now, Grace: time.Second})
		if err != nil || res.Outcome != store.Rotated {
			b.Fatalf("rotation %d: %v %v", gen, res.Outcome, err)
		}
		gen++
	}
	b.ReportMetric(float64(gen)/time.Since(start).Seconds(), "rotations/s")
}

func BenchmarkRotate_Memory(b *testing.B) { benchRotate(b, store.NewMemory(nil)) }

func BenchmarkRotate_File(b *testing.B) {
	s, err := store.OpenFile(filepath.Join(b.TempDir(), "s.db"), nil, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchRotate(b, s)
}

func BenchmarkRotate_Redis(b *testing.B) {
	srv := storetest.StartRedis(b)
	benchRotate(b, store.NewRedis(srv.Client(), "tg:", false))
}

// roundTrips counts commands a client sends to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestRedis_RotationIsOneRoundTrip: after the script is loaded, each
// rotation is one command (EVALSHA) and so one round trip.
func TestRedis_RotationIsOneRoundTrip(t *testing.T) {
	srv := storetest.StartRedis(t)
	c := srv.Client()
	hook := &roundTrips{}
	c.AddHook(hook)
	s := store.NewRedis(c, "tg:", false)
	ctx := context.Background()
	now := time.Now()
	if err := s.Create(ctx, storetest.NewFamily("rt", now)); err != nil {
		t.Fatal(err)
	}
	rotate := func(gen int) {
		res, err := s.Rotate(ctx, store.Rotation{ID: "rt", Presented: sum("rt", gen), Next: sum("rt", gen+1), Now: now, Grace: time.Second})
		if err != nil || res.Outcome != store.Rotated {
			t.Fatalf("rotation %d: %v %v", gen, res.Outcome, err)
		}
	}
	rotate(0) // may load the script (EVALSHA, NOSCRIPT, EVAL)
	before := hook.n.Load()
	const n = 20
	for i := 1; i <= n; i++ {
		rotate(i)
	}
	if got := hook.n.Load() - before; got != n {
		t.Fatalf("%d rotations took %d round trips", n, got)
	}
}
