package store

import (
	"context"
	"sync"
	"time"
)

// Memory keeps families in this process; they are lost on restart. For tests
// and throwaway setups.
type Memory struct {
	mu     sync.Mutex
	fams   map[string]*Family
	grants map[string]*JobGrant
	now    func() time.Time
	writes int
}

// NewMemory returns an empty memory store; now is its clock for forgetting
// ended families (nil means time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{fams: map[string]*Family{}, grants: map[string]*JobGrant{}, now: now}
}

func clone(f *Family) *Family {
	c := *f
	if f.Bridges != nil {
		c.Bridges = make(map[string][]byte, len(f.Bridges))
		for k, v := range f.Bridges {
			c.Bridges[k] = v
		}
	}
	return &c
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, f *Family) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.fams[f.ID]; ok {
		return ErrExists
	}
	m.fams[f.ID] = clone(f)
	m.sweepLocked()
	return nil
}

// sweepLocked forgets ended families, a little at a time: every 1024th
// write walks the map.
func (m *Memory) sweepLocked() {
	m.writes++
	if m.writes%1024 != 0 {
		return
	}
	now := m.now()
	for id, f := range m.fams {
		if !now.Before(f.Expiry()) {
			delete(m.fams, id)
		}
	}
	for id, g := range m.grants {
		if !now.Before(g.Expires) {
			delete(m.grants, id)
		}
	}
}

// PutGrant implements Store.
func (m *Memory) PutGrant(_ context.Context, g *JobGrant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *g
	m.grants[g.ID] = &c
	m.sweepLocked()
	return nil
}

// GetGrant implements Store.
func (m *Memory) GetGrant(_ context.Context, id string, now time.Time) (*JobGrant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, err := liveGrant(m.grants[id], now)
	if err != nil {
		return nil, err
	}
	c := *g
	return &c, nil
}

// ShortenGrant implements Store.
func (m *Memory) ShortenGrant(_ context.Context, id string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g, ok := m.grants[id]; ok && until.Before(g.Expires) {
		g.Expires = until
	}
	return nil
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, id string) (*Family, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.fams[id]
	if !ok {
		return nil, ErrNotFound
	}
	return clone(f), nil
}

// Rotate implements Store.
func (m *Memory) Rotate(_ context.Context, r Rotation) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.fams[r.ID]
	if !ok {
		return Result{Outcome: Unknown}, nil
	}
	res := Decide(f, r)
	if res.Outcome == Expired {
		delete(m.fams, r.ID)
	}
	if res.Family != nil {
		res.Family = clone(res.Family)
	}
	return res, nil
}

// Peek implements Store.
func (m *Memory) Peek(_ context.Context, id string, bridgeKey []byte, now time.Time) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.fams[id]
	if !ok {
		return Result{Outcome: Unknown}, nil
	}
	res := PeekFamily(clone(f), bridgeKey, now)
	return res, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.fams, id)
	return nil
}

// Len returns the number of families held.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.fams)
}

// Close implements Store.
func (m *Memory) Close() error { return nil }

var _ Store = (*Memory)(nil)

// Each implements Lister.
func (m *Memory) Each(_ context.Context, fn func(*Family) error) error {
	m.mu.Lock()
	fams := make([]*Family, 0, len(m.fams))
	for _, f := range m.fams {
		fams = append(fams, clone(f))
	}
	m.mu.Unlock()
	for _, f := range fams {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
