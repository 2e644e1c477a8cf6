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
// Each family is one small hash at <prefix>fam:{<id>} (one-letter fields,
// raw 32-byte token hashes, the claims without the sub kept beside them,
// so every value stays under Redis's listpack limit of 64 bytes and the
// hash stays compact); an inline-refresh bridge is a string beside it at
// <prefix>fam:{<id>}:b:<hash>. The braces are a Cluster hash tag: a
// family's keys share a slot, so each operation is one atomic command or
// Lua script and one round trip. Keys expire with the family's deadline.
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

// bridgeKey names the bridge of one expired access token (by 128 bits of
// its hash); "-" when there is none, a key never written.
func (s *Redis) bridgeKey(id string, h []byte) string {
	if len(h) == 0 {
		return s.key(id) + ":b:-"
	}
	return s.key(id) + ":b:" + hex.EncodeToString(h[:16])
}

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

// withoutSub drops the sub claim from a snapshot when it equals the
// family's subject, which is stored on its own: it keeps the value short.
func withoutSub(claims []byte, sub string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(claims, &m) != nil {
		return claims
	}
	if s, ok := m["sub"]; ok {
		var v string
		if json.Unmarshal(s, &v) != nil || v != sub {
			return claims
		}
		delete(m, "sub")
	}
	b, err := json.Marshal(m)
	if err != nil {
		return claims
	}
	return b
}

func withSub(claims []byte, sub string) []byte {
	var m map[string]json.RawMessage
	if sub == "" || json.Unmarshal(claims, &m) != nil || m == nil {
		return claims
	}
	if _, ok := m["sub"]; ok {
		return claims
	}
	m["sub"], _ = json.Marshal(sub)
	b, err := json.Marshal(m)
	if err != nil {
		return claims
	}
	return b
}

func toHash(f *Family) []any {
	h := []any{
		"s", f.Subject, "c", withoutSub(f.Claims, f.Subject), "a", f.Alg,
		"t", f.AccessTTL.Milliseconds(), "n", ms(f.Created), "l", ms(f.LastUsed),
		"x", ms(f.Absolute), "i", f.Idle.Milliseconds(), "h", f.Current, "g", f.Generation,
	}
	if f.KID != "" {
		h = append(h, "k", f.KID)
	}
	if !f.PrevAt.IsZero() {
		h = append(h, "pa", ms(f.PrevAt))
	}
	if f.Revoked {
		h = append(h, "r", "1", "ra", ms(f.RevokedAt))
	}
	return h
}

func fromHash(id string, h map[string]string) *Family {
	gen, _ := strconv.ParseInt(h["g"], 10, 64)
	return &Family{
		ID: id, Subject: h["s"], Claims: withSub([]byte(h["c"]), h["s"]), Alg: h["a"], KID: h["k"],
		AccessTTL: durMS(h["t"]), Created: fromMS(h["n"]), LastUsed: fromMS(h["l"]),
		Absolute: fromMS(h["x"]), Idle: durMS(h["i"]), Current: []byte(h["h"]),
		PrevAt: fromMS(h["pa"]), Generation: gen,
		Revoked: h["r"] == "1", RevokedAt: fromMS(h["ra"]),
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
// the same behaviour. KEYS: the family, its bridge for the presented
// access token. ARGV: presented, next (raw hashes), now, grace, retention
// (ms), probe ("1"/"0"), bridge value ("" for none).
var rotateScript = redis.NewScript(`
local k = KEYS[1]
local f = redis.call('HMGET', k, 'h', 'pa', 'l', 'x', 'i', 'r')
if not f[1] then return {'unknown'} end
local now = tonumber(ARGV[3])
if f[6] == '1' then return {'revoked'} end
if now >= tonumber(f[4]) then redis.call('DEL', k) return {'expired', 'lifetime'} end
if now >= tonumber(f[3]) + tonumber(f[5]) then redis.call('DEL', k) return {'expired', 'idle'} end
if ARGV[1] == f[1] then
  local deadline = math.min(tonumber(f[4]), now + tonumber(f[5]))
  redis.call('HSET', k, 'pa', now, 'h', ARGV[2], 'l', now)
  redis.call('HINCRBY', k, 'g', 1)
  redis.call('PEXPIREAT', k, deadline)
  if ARGV[7] ~= '' then redis.call('SET', KEYS[2], ARGV[7], 'PXAT', deadline) end
  return {'rotated', redis.call('HGETALL', k)}
end
if ARGV[2] == f[1] and f[2] and now - tonumber(f[2]) <= tonumber(ARGV[4]) then
  return {'grace', redis.call('HGETALL', k), redis.call('GET', KEYS[2])}
end
if ARGV[6] == '1' then return {'stale'} end
redis.call('HSET', k, 'r', '1', 'ra', now)
redis.call('PEXPIRE', k, ARGV[5])
return {'reused'}`)

var scriptOutcomes = map[string]Outcome{
	"rotated": Rotated, "grace": Grace, "reused": Reused, "revoked": Revoked, "expired": Expired, "unknown": Unknown,
	"stale": Stale,
}

// Rotate implements Store: one Lua script, one round trip.
func (s *Redis) Rotate(ctx context.Context, r Rotation) (Result, error) {
	probe := "0"
	if r.Probe {
		probe = "1"
	}
	bridge := []byte{}
	if len(r.BridgeKey) > 0 {
		bridge = r.BridgeSealed
	}
	v, err := rotateScript.Run(ctx, s.client, []string{s.key(r.ID), s.bridgeKey(r.ID, r.BridgeKey)},
		r.Presented, r.Next, ms(r.Now), r.Grace.Milliseconds(), RevokedRetention.Milliseconds(),
		probe, bridge).Slice()
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
		if len(v) > 2 {
			if b, ok := v[2].(string); ok && len(r.BridgeKey) > 0 {
				res.Bridge = []byte(b)
			}
		}
	}
	return res, nil
}

var peekScript = redis.NewScript(`return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2])}`)

// Peek implements Store: the family and its bridge in one script, judged
// in Go.
func (s *Redis) Peek(ctx context.Context, id string, bridgeKey []byte, now time.Time) (Result, error) {
	v, err := peekScript.Run(ctx, s.client, []string{s.key(id), s.bridgeKey(id, bridgeKey)}).Slice()
	if err != nil {
		return Result{}, fmt.Errorf("redis peek: %w", err)
	}
	h := pairs(v[0])
	if len(h) == 0 {
		return Result{Outcome: Unknown}, nil
	}
	res := PeekFamily(fromHash(id, h), nil, now)
	if len(v) > 1 && len(bridgeKey) > 0 && res.Outcome == Live {
		if b, ok := v[1].(string); ok {
			res.Bridge = []byte(b)
		}
	}
	return res, nil
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
			if !strings.HasSuffix(key, "}") {
				continue // a bridge, not a family
			}
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
