package store

import (
	"context"
	"errors"
	"time"
)

// Observer is told of every store operation: its name (create, get, rotate,
// peek, delete, put_grant, get_grant, shorten_grant), how long it took, and its error when the store failed (never
// ErrNotFound or ErrExists, which are answers, not failures).
type Observer func(op string, took time.Duration, failure error)

type observed struct {
	Store
	observe Observer
}

// Observe wraps s so that every operation is reported to fn.
func Observe(s Store, fn Observer) Store { return observed{Store: s, observe: fn} }

func (o observed) report(op string, start time.Time, err error) {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) {
		err = nil
	}
	o.observe(op, time.Since(start), err)
}

func (o observed) Create(ctx context.Context, f *Family) error {
	start := time.Now()
	err := o.Store.Create(ctx, f)
	o.report("create", start, err)
	return err
}

func (o observed) Get(ctx context.Context, id string) (*Family, error) {
	start := time.Now()
	f, err := o.Store.Get(ctx, id)
	o.report("get", start, err)
	return f, err
}

func (o observed) Rotate(ctx context.Context, r Rotation) (Result, error) {
	start := time.Now()
	res, err := o.Store.Rotate(ctx, r)
	o.report("rotate", start, err)
	return res, err
}

func (o observed) Peek(ctx context.Context, id string, bridgeKey []byte, now time.Time) (Result, error) {
	start := time.Now()
	res, err := o.Store.Peek(ctx, id, bridgeKey, now)
	o.report("peek", start, err)
	return res, err
}

func (o observed) Delete(ctx context.Context, id string) error {
	start := time.Now()
	err := o.Store.Delete(ctx, id)
	o.report("delete", start, err)
	return err
}

func (o observed) PutGrant(ctx context.Context, g *JobGrant) error {
	start := time.Now()
	err := o.Store.PutGrant(ctx, g)
	o.report("put_grant", start, err)
	return err
}

func (o observed) GetGrant(ctx context.Context, id string, now time.Time) (*JobGrant, error) {
	start := time.Now()
	g, err := o.Store.GetGrant(ctx, id, now)
	o.report("get_grant", start, err)
	return g, err
}

func (o observed) ShortenGrant(ctx context.Context, id string, until time.Time) error {
	start := time.Now()
	err := o.Store.ShortenGrant(ctx, id, until)
	o.report("shorten_grant", start, err)
	return err
}
