package storetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a throwaway redis-server owned by one test, on a free
// port, keeping nothing on disk. Tests stop and start it to play outages.
type RedisServer struct {
	Addr string
	t    testing.TB
	mu   sync.Mutex
	cmd  *exec.Cmd
	port int
	dir  string
	// durable servers write every command to an append-only file in dir
	// before answering, so a kill and restart loses nothing.
	durable bool
}

// StartRedis starts a redis-server for t and stops it when t ends. It fails
// the test, never skips it, when redis-server is missing: `.ci/run`
// installs it.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	return startRedis(t, false)
}

// StartDurableRedis is StartRedis with an fsync'ed append-only file: a kill
// and Start brings back every key, as a production Redis with AOF would.
func StartDurableRedis(t testing.TB) *RedisServer {
	t.Helper()
	return startRedis(t, true)
}

func startRedis(t testing.TB, durable bool) *RedisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not installed (apt-get install -y redis-server; .ci/run does it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(port), t: t, port: port, dir: t.TempDir(), durable: durable}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server (again) on its port and waits until it answers.
func (s *RedisServer) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return
	}
	aof := "no"
	if s.durable {
		aof = "yes"
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", aof, "--appendfsync", "always", "--dir", s.dir, "--protected-mode", "no")
	// Its log goes to a file in its dir; the test output stays readable.
	cmd.Args = append(cmd.Args, "--logfile", "redis.log")
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on %s did not answer", s.Addr)
}

// Stop kills the server, as a crash would.
func (s *RedisServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Client returns a client for the server, closed when the test ends.
func (s *RedisServer) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// SharedRedis returns a client for the server named by REDIS_URL when that
// is set, or for a throwaway server of this test's own, and a key prefix
// unique to the test so tests sharing one server never meet.
func SharedRedis(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	prefix := fmt.Sprintf("tgtest:%s:%d:", t.Name(), time.Now().UnixNano())
	if u := os.Getenv("REDIS_URL"); u != "" {
		opts, err := redis.ParseURL(u)
		if err != nil {
			t.Fatalf("REDIS_URL: %v", err)
		}
		c := redis.NewClient(opts)
		t.Cleanup(func() { c.Close() })
		return c, prefix
	}
	return StartRedis(t).Client(), prefix
}
