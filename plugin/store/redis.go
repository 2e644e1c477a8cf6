package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps families in Redis (single node, Sentinel or Cluster through
// go-redis's UniversalClient), so several tokengate replicas share them.
// Each family is one hash at <prefix>fam:{<id>}: the braces are a Cluster
// hash tag, and every operation touches that one key, so each is a single
// atomic command or Lua script and a single round trip. Keys expire with the
// family's deadline.
type Redis struct {
	client redis.UniversalClient
	prefix string
	owned  bool
}

// NewRedis wraps a client; prefix namespaces the keys (e.g. "tokengate:").
// Close closes the client only if owned is true.
func NewRedis(client redis.UniversalClient, prefix string, owned bool) *Redis {
	return &Redis{client: client, prefix: prefix, owned: owned}
}

func (s *Redis) key(id string) string { return s.prefix + "fam:{" + id + "}" }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v string) time.Time {
	n, _ := strconv.ParseInt(v, 10, 64)
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func durMS(v string) time.Duration {
	n, _ := strconv.ParseInt(v, 10, 64)
	return time.Duration(n) * time.Millisecond
}

func toHash(f *Family) []any {
	h := []any{
		"sub", f.Subject, "claims", f.Claims, "alg", f.Alg, "kid", f.KID,
		"ttl", f.AccessTTL.Milliseconds(), "created", ms(f.Created), "last", ms(f.LastUsed),
		"abs", ms(f.Absolute), "idle", f.Idle.Milliseconds(), "cur", hex.EncodeToString(f.Current),
		"gen", f.Generation,
	}
	if len(f.Previous) > 0 {
		h = append(h, "prev", hex.EncodeToString(f.Previous), "prev_at", ms(f.PrevAt), "sealed", f.Sealed)
	}
	if f.Revoked {
		h = append(h, "revoked", "1", "rev_at", ms(f.RevokedAt))
	}
	for k, v := range f.Bridges {
		h = append(h, bridgePrefix+k, v)
	}
	return h
}

// bridgePrefix prefixes the hash fields holding bridges.
const bridgePrefix = "b:"

func fromHash(id string, h map[string]string) *Family {
	cur, _ := hex.DecodeString(h["cur"])
	prev, _ := hex.DecodeString(h["prev"])
	gen, _ := strconv.ParseInt(h["gen"], 10, 64)
	var bridges map[string][]byte
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, bridgePrefix); ok {
			if bridges == nil {
				bridges = map[string][]byte{}
			}
			bridges[name] = []byte(v)
		}
	}
	return &Family{
		Bridges: bridges,
		ID:      id, Subject: h["sub"], Claims: []byte(h["claims"]), Alg: h["alg"], KID: h["kid"],
		AccessTTL: durMS(h["ttl"]), Created: fromMS(h["created"]), LastUsed: fromMS(h["last"]),
		Absolute: fromMS(h["abs"]), Idle: durMS(h["idle"]), Current: cur, Previous: prev,
		PrevAt: fromMS(h["prev_at"]), Sealed: []byte(h["sealed"]), Generation: gen,
		Revoked: h["revoked"] == "1", RevokedAt: fromMS(h["rev_at"]),
	}
}

func pairs(v any) map[string]string {
	list, _ := v.([]any)
	h := make(map[string]string, len(list)/2)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		h[k] = val
	}
	return h
}

var createScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1`)

// Create implements Store.
func (s *Redis) Create(ctx context.Context, f *Family) error {
	args := append([]any{ms(f.Expiry())}, toHash(f)...)
	n, err := createScript.Run(ctx, s.client, []string{s.key(f.ID)}, args...).Int()
	if err != nil {
		return fmt.Errorf("redis create: %w", err)
	}
	if n == 0 {
		return ErrExists
	}
	return nil
}

// Get implements Store.
func (s *Redis) Get(ctx context.Context, id string) (*Family, error) {
	h, err := s.client.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("redis get: %w", err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return fromHash(id, h), nil
}

// rotateScript is Decide in Lua; the conformance suite holds the two to
// the same behaviour. ARGV: presented, next, sealed, now, grace, retention
// (all times in ms), probe ("1" or "0"), bridge field ("" for none), bridge.
var rotateScript = redis.NewScript(`
local k = KEYS[1]
local f = redis.call('HMGET', k, 'cur', 'prev', 'prev_at', 'last', 'abs', 'idle', 'revoked')
if not f[1] then return {'unknown'} end
local now = tonumber(ARGV[4])
if f[7] == '1' then return {'revoked'} end
if now >= tonumber(f[5]) then redis.call('DEL', k) return {'expired', 'lifetime'} end
if now >= tonumber(f[4]) + tonumber(f[6]) then redis.call('DEL', k) return {'expired', 'idle'} end
if ARGV[1] == f[1] then
  redis.call('HSET', k, 'prev', f[1], 'prev_at', now, 'cur', ARGV[2], 'sealed', ARGV[3], 'last', now)
  if ARGV[8] ~= '' then redis.call('HSET', k, ARGV[8], ARGV[9]) end
  redis.call('HINCRBY', k, 'gen', 1)
  redis.call('PEXPIREAT', k, math.min(tonumber(f[5]), now + tonumber(f[6])))
  return {'rotated', redis.call('HGETALL', k)}
end
if f[2] and ARGV[1] == f[2] and now - tonumber(f[3]) <= tonumber(ARGV[5]) then
  return {'grace', redis.call('HGETALL', k)}
end
if ARGV[7] == '1' then return {'stale'} end
redis.call('HSET', k, 'revoked', '1', 'rev_at', now)
redis.call('PEXPIRE', k, ARGV[6])
return {'reused'}`)

var scriptOutcomes = map[string]Outcome{
	"rotated": Rotated, "grace": Grace, "reused": Reused, "revoked": Revoked, "expired": Expired, "unknown": Unknown,
	"stale": Stale,
}

// Rotate implements Store: one Lua script, one round trip.
func (s *Redis) Rotate(ctx context.Context, r Rotation) (Result, error) {
	probe, bridgeField := "0", ""
	if r.Probe {
		probe = "1"
	}
	if len(r.BridgeKey) > 0 {
		bridgeField = bridgePrefix + hex.EncodeToString(r.BridgeKey)
	}
	v, err := rotateScript.Run(ctx, s.client, []string{s.key(r.ID)},
		hex.EncodeToString(r.Presented), hex.EncodeToString(r.Next), r.Sealed,
		ms(r.Now), r.Grace.Milliseconds(), RevokedRetention.Milliseconds(),
		probe, bridgeField, r.BridgeSealed).Slice()
	if err != nil {
		return Result{}, fmt.Errorf("redis rotate: %w", err)
	}
	name, _ := v[0].(string)
	res := Result{Outcome: scriptOutcomes[name]}
	switch res.Outcome {
	case 0:
		return Result{}, errors.New("redis rotate: unexpected script answer")
	case Expired:
		res.EndReason, _ = v[1].(string)
	case Rotated, Grace:
		res.Family = fromHash(r.ID, pairs(v[1]))
		if res.Outcome == Grace {
			res.Bridge = res.Family.bridge(r.BridgeKey)
		}
	}
	return res, nil
}

// Peek implements Store: one HGETALL, judged in Go.
func (s *Redis) Peek(ctx context.Context, id string, bridgeKey []byte, now time.Time) (Result, error) {
	h, err := s.client.HGetAll(ctx, s.key(id)).Result()
	if err != nil {
		return Result{}, fmt.Errorf("redis peek: %w", err)
	}
	if len(h) == 0 {
		return Result{Outcome: Unknown}, nil
	}
	return PeekFamily(fromHash(id, h), bridgeKey, now), nil
}

// Delete implements Store.
func (s *Redis) Delete(ctx context.Context, id string) error {
	if err := s.client.Del(ctx, s.key(id)).Err(); err != nil {
		return fmt.Errorf("redis delete: %w", err)
	}
	return nil
}

func (s *Redis) grantKey(id string) string { return s.prefix + "job:{" + id + "}" }

// PutGrant implements Store: one SET with the grant's expiry.
func (s *Redis) PutGrant(ctx context.Context, g *JobGrant) error {
	v, err := json.Marshal(g)
	if err != nil {
		return err
	}
	if err := s.client.Set(ctx, s.grantKey(g.ID), v, 0).Err(); err != nil {
		return fmt.Errorf("redis put grant: %w", err)
	}
	if err := s.client.PExpireAt(ctx, s.grantKey(g.ID), g.Expires).Err(); err != nil {
		return fmt.Errorf("redis put grant: %w", err)
	}
	return nil
}

// GetGrant implements Store.
func (s *Redis) GetGrant(ctx context.Context, id string, now time.Time) (*JobGrant, error) {
	v, err := s.client.Get(ctx, s.grantKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redis get grant: %w", err)
	}
	var g JobGrant
	if err := json.Unmarshal(v, &g); err != nil {
		return nil, fmt.Errorf("decoding job grant: %w", err)
	}
	return liveGrant(&g, now)
}

// shortenScript lowers a grant's expiry, in the value and the key's TTL.
// ARGV: until (ms), until (RFC 3339, as the JSON holds it), now (ms).
var shortenScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local g = cjson.decode(v)
local limit = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= 0 and tonumber(ARGV[3]) + ttl <= limit then return 0 end
g['expires'] = ARGV[2]
redis.call('SET', KEYS[1], cjson.encode(g), 'KEEPTTL')
redis.call('PEXPIREAT', KEYS[1], limit)
return 1`)

// ShortenGrant implements Store.
func (s *Redis) ShortenGrant(ctx context.Context, id string, until time.Time) error {
	err := shortenScript.Run(ctx, s.client, []string{s.grantKey(id)}, ms(until), until.Format(time.RFC3339Nano), ms(time.Now())).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redis shorten grant: %w", err)
	}
	return nil
}

// Close implements Store.
func (s *Redis) Close() error {
	if s.owned {
		return s.client.Close()
	}
	return nil
}

var _ Store = (*Redis)(nil)

// Each implements Lister with SCAN, on every master of a Cluster.
func (s *Redis) Each(ctx context.Context, fn func(*Family) error) error {
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, s.prefix+"fam:*", 500).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			id := strings.TrimSuffix(strings.TrimPrefix(key, s.prefix+"fam:{"), "}")
			h, err := c.HGetAll(ctx, key).Result()
			if err != nil {
				return fmt.Errorf("redis list: %w", err)
			}
			if len(h) == 0 {
				continue
			}
			if err := fn(fromHash(id, h)); err != nil {
				return err
			}
		}
		return iter.Err()
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.client)
}
