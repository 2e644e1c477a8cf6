// Command tokengate-scale measures what sessions cost: bytes per session in
// Redis (INFO memory), bytes per session in the bbolt file, heap per
// session in the memory store, and how a rotation's cost grows with the
// number of sessions held. Families look like the seed API's logins (its
// claims snapshot, one rotation done, so a sealed successor is stored).
//
//	go run ./cmd/tokengate-scale [-redis-server redis-server] [-max 1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokengate/tokengate/plugin/store"
)

func main() {
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary")
	maxN := flag.Int("max", 1_000_000, "largest session count for the rotation-cost series")
	flag.Parse()
	dir, err := os.MkdirTemp("", "tokengate-scale-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	fmt.Printf("tokengate-scale on %d cores, %s\n\n", runtime.NumCPU(), runtime.Version())

	addr, stop := startRedis(*redisBin, dir)
	defer stop()
	client := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 32})
	defer client.Close()

	fmt.Println("per-session storage (100,000 sessions, one rotation each):")
	redisBytes(client)
	fileBytes(dir)
	memoryHeap()

	fmt.Println("\nrotation cost as sessions grow (one goroutine, 20,000 rotations each):")
	fmt.Printf("  %-10s %16s %16s\n", "sessions", "memory ns/op", "redis µs/op")
	for n := 1000; n <= *maxN; n *= 10 {
		mem := store.NewMemory(nil)
		fill(mem, n)
		memNS := rotateCost(mem, n)
		redisCell := "-"
		if n <= 1_000_000 {
			client.FlushAll(context.Background())
			rs := store.NewRedis(client, "tg:", false)
			fill(rs, n)
			redisCell = fmt.Sprintf("%.1f", rotateCost(rs, n)/1000)
		}
		fmt.Printf("  %-10d %16.0f %16s\n", n, memNS, redisCell)
		runtime.GC()
	}
}

var claims = []byte(`{"email":"ops@example.com","role":"user","sub":"u_af3c82544f64"}`)

func family(i int, now time.Time) *store.Family {
	id := fmt.Sprintf("%022d", i)
	return &store.Family{
		ID: id, Subject: "u_af3c82544f64", Claims: claims, Alg: "HS256", AccessTTL: time.Hour,
		Created: now, LastUsed: now, Absolute: now.Add(7 * 24 * time.Hour), Idle: 24 * time.Hour,
		Current: hash(id, 0),
	}
}

func hash(id string, gen int) []byte {
	b := make([]byte, 32)
	copy(b, id+"/"+strconv.Itoa(gen))
	return b
}

// fill creates n families and rotates each once, 16 at a time.
func fill(s store.Store, n int) {
	ctx := context.Background()
	now := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, 1024)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f := family(i, now)
				if err := s.Create(ctx, f); err != nil {
					log.Fatal(err)
				}
				if _, err := s.Rotate(ctx, store.Rotation{ID: f.ID, Presented: hash(f.ID, 0), Next: hash(f.ID, 1),
					Now: now, Grace: 10 * time.Second}); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// rotateCost rotates random-ish families of the n held and returns ns/op.
func rotateCost(s store.Store, n int) float64 {
	ctx := context.Background()
	now := time.Now()
	const ops = 20000
	gens := map[int]int{}
	start := time.Now()
	for k := range ops {
		i := (k * 7919) % n
		g := gens[i] + 1
		id := fmt.Sprintf("%022d", i)
		res, err := s.Rotate(ctx, store.Rotation{ID: id, Presented: hash(id, g), Next: hash(id, g+1),
			Now: now, Grace: 10 * time.Second})
		if err != nil || res.Outcome != store.Rotated {
			log.Fatalf("rotation of %s: %v %v", id, res.Outcome, err)
		}
		gens[i] = g
	}
	return float64(time.Since(start).Nanoseconds()) / ops
}

func usedMemory(c *redis.Client) int64 {
	info := c.Info(context.Background(), "memory").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

func redisBytes(c *redis.Client) {
	ctx := context.Background()
	c.FlushAll(ctx)
	before := usedMemory(c)
	fill(store.NewRedis(c, "tg:", false), 100_000)
	after := usedMemory(c)
	enc := c.ObjectEncoding(ctx, "tg:fam:{"+fmt.Sprintf("%022d", 1)+"}").Val()
	fmt.Printf("  redis:  %6.0f bytes/session (INFO used_memory; hash encoding %s)\n", float64(after-before)/100_000, enc)
	c.FlushAll(ctx)
}

func fileBytes(dir string) {
	path := filepath.Join(dir, "scale.db")
	s, err := store.OpenFile(path, nil, 0)
	if err != nil {
		log.Fatal(err)
	}
	const n = 20_000
	fill(s, n)
	s.Close()
	fi, _ := os.Stat(path)
	fmt.Printf("  file:   %6.0f bytes/session (bbolt file size over %d sessions)\n", float64(fi.Size())/n, n)
}

func memoryHeap() {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := store.NewMemory(nil)
	fill(m, 100_000)
	runtime.GC()
	runtime.ReadMemStats(&after)
	fmt.Printf("  memory: %6.0f bytes/session (Go heap after GC)\n", float64(after.HeapAlloc-before.HeapAlloc)/100_000)
	runtime.KeepAlive(m)
}

func startRedis(bin, dir string) (string, func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", bin, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatal("redis-server did not start")
	return "", nil
}
