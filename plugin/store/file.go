package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	familiesBucket = []byte("families")
	grantsBucket   = []byte("grants")
)

// File keeps families in a bbolt file: one process at a time, surviving
// restarts and config reloads. Each operation is one bbolt transaction.
type File struct {
	db   *bolt.DB
	now  func() time.Time
	stop chan struct{}
	done chan struct{}
}

// OpenFile opens (or creates) the store at path. A file held by another
// process fails after a few seconds with an error saying so. Ended families
// are removed every sweep interval.
func OpenFile(path string, now func() time.Time, sweep time.Duration) (*File, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating session store directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening session store %s (is another process using it?): %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(familiesBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(grantsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing session store %s: %w", path, err)
	}
	f := &File{db: db, now: now, stop: make(chan struct{}), done: make(chan struct{})}
	go f.sweeper(sweep)
	return f, nil
}

func (s *File) sweeper(every time.Duration) {
	defer close(s.done)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			_, _ = s.Sweep()
		}
	}
}

// Sweep removes ended families and returns how many.
func (s *File) Sweep() (int, error) {
	now := s.now()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		fams, err := sweepBucket(tx.Bucket(familiesBucket), func(v []byte) bool {
			var f Family
			return json.Unmarshal(v, &f) != nil || !now.Before(f.Expiry())
		})
		if err != nil {
			return err
		}
		grants, err := sweepBucket(tx.Bucket(grantsBucket), func(v []byte) bool {
			var g JobGrant
			return json.Unmarshal(v, &g) != nil || !now.Before(g.Expires)
		})
		n = fams + grants
		return err
	})
	return n, err
}

// sweepBucket deletes the entries of b whose value ended says has ended
// (or cannot be read) and returns how many.
func sweepBucket(b *bolt.Bucket, ended func(v []byte) bool) (int, error) {
	var gone [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if ended(v) {
			gone = append(gone, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range gone {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// PutGrant implements Store.
func (s *File) PutGrant(_ context.Context, g *JobGrant) error {
	v, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(grantsBucket).Put([]byte(g.ID), v)
	})
}

func getGrant(b *bolt.Bucket, id string) (*JobGrant, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var g JobGrant
	if err := json.Unmarshal(v, &g); err != nil {
		return nil, fmt.Errorf("decoding job grant: %w", err)
	}
	return &g, nil
}

// GetGrant implements Store.
func (s *File) GetGrant(_ context.Context, id string, now time.Time) (*JobGrant, error) {
	var g *JobGrant
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		g, err = getGrant(tx.Bucket(grantsBucket), id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return liveGrant(g, now)
}

// ShortenGrant implements Store.
func (s *File) ShortenGrant(_ context.Context, id string, until time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(grantsBucket)
		g, err := getGrant(b, id)
		if err == ErrNotFound || (err == nil && !until.Before(g.Expires)) {
			return nil
		}
		if err != nil {
			return err
		}
		g.Expires = until
		v, err := json.Marshal(g)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	})
}

func put(b *bolt.Bucket, f *Family) error {
	v, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return b.Put([]byte(f.ID), v)
}

func get(b *bolt.Bucket, id string) (*Family, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var f Family
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, fmt.Errorf("decoding session family: %w", err)
	}
	return &f, nil
}

// Create implements Store.
func (s *File) Create(_ context.Context, f *Family) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(familiesBucket)
		if b.Get([]byte(f.ID)) != nil {
			return ErrExists
		}
		return put(b, f)
	})
}

// Get implements Store.
func (s *File) Get(_ context.Context, id string) (*Family, error) {
	var f *Family
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		f, err = get(tx.Bucket(familiesBucket), id)
		return err
	})
	return f, err
}

// Rotate implements Store: Decide inside one read-write transaction.
func (s *File) Rotate(_ context.Context, r Rotation) (Result, error) {
	var res Result
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(familiesBucket)
		f, err := get(b, r.ID)
		if err == ErrNotFound {
			res = Result{Outcome: Unknown}
			return nil
		}
		if err != nil {
			return err
		}
		res = Decide(f, r)
		switch res.Outcome {
		case Rotated, Reused:
			return put(b, f)
		case Expired:
			return b.Delete([]byte(r.ID))
		}
		return nil
	})
	return res, err
}

// Peek implements Store.
func (s *File) Peek(_ context.Context, id string, bridgeKey []byte, now time.Time) (Result, error) {
	var res Result
	err := s.db.View(func(tx *bolt.Tx) error {
		f, err := get(tx.Bucket(familiesBucket), id)
		if err == ErrNotFound {
			res = Result{Outcome: Unknown}
			return nil
		}
		if err != nil {
			return err
		}
		res = PeekFamily(f, bridgeKey, now)
		return nil
	})
	return res, err
}

// Delete implements Store.
func (s *File) Delete(_ context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(familiesBucket).Delete([]byte(id))
	})
}

// Close implements Store.
func (s *File) Close() error {
	close(s.stop)
	<-s.done
	return s.db.Close()
}

var _ Store = (*File)(nil)

// Each implements Lister.
func (s *File) Each(_ context.Context, fn func(*Family) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(familiesBucket).ForEach(func(k, v []byte) error {
			var f Family
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decoding session family: %w", err)
			}
			return fn(&f)
		})
	})
}
