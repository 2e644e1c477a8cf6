package token

import (
	"sync"
	"time"
)

// Cache remembers tokens that verified, so that a token presented again,
// the usual case for an API client, skips the base64, JSON and signature
// work. An entry is found only by the exact token string, so a cache hit can
// never accept a token that differs from one that verified by even a byte.
// An entry is used until the token expires or MaxAge after it verified,
// whichever is first, so a key withdrawn from a JWKS stops counting within
// MaxAge. The cache is bounded: two generations of at most Size/2 entries
// each; when the newer one fills up the older one is dropped whole.
type Cache struct {
	// Size bounds the number of tokens remembered.
	Size int
	// MaxAge bounds how long a verification is reused.
	MaxAge time.Duration

	mu       sync.RWMutex
	cur, old map[string]cacheEntry
}

type cacheEntry struct {
	claims *Claims
	until  time.Time
}

// NewCache returns a cache for size tokens, each reused for at most maxAge.
func NewCache(size int, maxAge time.Duration) *Cache {
	return &Cache{Size: size, MaxAge: maxAge, cur: make(map[string]cacheEntry)}
}

func (c *Cache) get(raw string, now time.Time) *Claims {
	c.mu.RLock()
	e, ok := c.cur[raw]
	if !ok {
		e, ok = c.old[raw]
	}
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) {
		return nil
	}
	return e.claims
}

func (c *Cache) put(raw string, claims *Claims, now time.Time, leeway time.Duration) {
	until := claims.ExpiresAt.Add(leeway)
	if limit := now.Add(c.MaxAge); limit.Before(until) {
		until = limit
	}
	c.mu.Lock()
	if len(c.cur) >= c.Size/2 {
		c.old, c.cur = c.cur, make(map[string]cacheEntry, len(c.cur))
	}
	c.cur[raw] = cacheEntry{claims: claims, until: until}
	c.mu.Unlock()
}

// Len returns the number of tokens remembered.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.cur) + len(c.old)
}
