package plugin

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/plugin/store"
)

// StoreConfig selects where sessions are kept.
type StoreConfig struct {
	// Type is file (the default: a bbolt file, one instance), memory (lost on
	// restart) or redis (several replicas).
	Type string `json:"type,omitempty"`

	// Path is the bbolt file of the file store. Default:
	// <Caddy data dir>/tokengate/sessions.db.
	Path string `json:"path,omitempty"`

	// Addrs are the Redis addresses: host:port or redis:// / rediss:// URLs
	// (whose user, password, db and TLS apply). One address is a single
	// node; several are a Cluster; with MasterName they are Sentinels.
	Addrs []string `json:"addrs,omitempty"`
	// MasterName selects Sentinel mode with this master.
	MasterName string `json:"master_name,omitempty"`
	// Cluster forces Cluster mode with a single address (a configuration
	// endpoint).
	Cluster bool `json:"cluster,omitempty"`
	// Username and Password authenticate to Redis; placeholders such as
	// {env.REDIS_PASSWORD} are expanded.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DB is the database number (single node and Sentinel only).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS.
	TLS bool `json:"tls,omitempty"`
	// Prefix namespaces tokengate's keys. Default: tokengate:
	Prefix string `json:"prefix,omitempty"`
}

// stores shares open stores between configs: a reload reuses the bbolt
// handle or Redis client of the config it replaces, and the last config
// using one closes it.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

func (p pooledStore) Destruct() error { return p.Store.Close() }

// openStore resolves placeholders, then returns the shared store for the
// configuration and the pool key to release in Cleanup.
func openStore(cfg StoreConfig) (store.Store, string, error) {
	repl := caddy.NewReplacer()
	switch cfg.Type {
	case "", "file":
		path := repl.ReplaceAll(cfg.Path, "")
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "tokengate", "sessions.db")
		}
		key := "file:" + path
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			s, err := store.OpenFile(path, nil, 10*time.Minute)
			return pooledStore{s}, err
		})
		if err != nil {
			return nil, "", err
		}
		return v.(pooledStore).Store, key, nil
	case "memory":
		// One memory store per process, so sessions outlive config reloads.
		key := "memory"
		v, _, _ := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			return pooledStore{store.NewMemory(nil)}, nil
		})
		return v.(pooledStore).Store, key, nil
	case "redis":
		opts, prefix, err := redisOptions(cfg, repl)
		if err != nil {
			return nil, "", err
		}
		pw := sha256.Sum256([]byte(opts.Password))
		key := fmt.Sprintf("redis:%q|%q|%v|%q|%x|%d|%v|%q", opts.Addrs, opts.MasterName, opts.IsClusterMode,
			opts.Username, pw[:8], opts.DB, opts.TLSConfig != nil, prefix)
		v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
			return pooledStore{store.NewRedis(redis.NewUniversalClient(opts), prefix, true)}, nil
		})
		if err != nil {
			return nil, "", err
		}
		return v.(pooledStore).Store, key, nil
	}
	return nil, "", fmt.Errorf("store type %q: use file, memory or redis", cfg.Type)
}

// redisOptions builds go-redis options. Timeouts are short: when Redis is
// down, a refresh answers 503 within about a second instead of hanging.
func redisOptions(cfg StoreConfig, repl *caddy.Replacer) (*redis.UniversalOptions, string, error) {
	opts := &redis.UniversalOptions{
		MasterName: cfg.MasterName, IsClusterMode: cfg.Cluster,
		Username: repl.ReplaceAll(cfg.Username, ""), Password: repl.ReplaceAll(cfg.Password, ""), DB: cfg.DB,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		PoolTimeout: time.Second, MaxRetries: 1,
	}
	if cfg.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if len(cfg.Addrs) == 0 {
		return nil, "", errors.New("redis store: no address")
	}
	for i, a := range cfg.Addrs {
		a = repl.ReplaceAll(a, "")
		if !strings.Contains(a, "://") {
			opts.Addrs = append(opts.Addrs, a)
			continue
		}
		u, err := redis.ParseURL(a)
		if err != nil {
			return nil, "", fmt.Errorf("redis store address %d: %w", i+1, err)
		}
		opts.Addrs = append(opts.Addrs, u.Addr)
		if i == 0 {
			if opts.Username == "" {
				opts.Username = u.Username
			}
			if opts.Password == "" {
				opts.Password = u.Password
			}
			if opts.DB == 0 {
				opts.DB = u.DB
			}
			if u.TLSConfig != nil && opts.TLSConfig == nil {
				opts.TLSConfig = u.TLSConfig
			}
		}
	}
	prefix := cfg.Prefix
	if prefix == "" {
		prefix = "tokengate:"
	}
	return opts, prefix, nil
}
