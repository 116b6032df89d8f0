package redislock_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// BenchmarkAcquireRelease is one uncontended acquire and release with the
// heartbeat on: two round trips.
func BenchmarkAcquireRelease(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	l, err := redislock.New(c, redistest.Key(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireReleaseFresh is New, Acquire and Release on a name never
// used before, as code that makes a Lock per entity does: nothing about the
// name is known to the client or to the server yet. Building the name (one
// small allocation) is counted too, as the caller would spend it. A private
// server keeps whatever the names leave behind away from other benchmarks.
func BenchmarkAcquireReleaseFresh(b *testing.B) {
	c := redistest.Start(b).Client(b)
	ctx := context.Background()
	name := []byte(redistest.Key(b) + ":")
	prefix := len(name)
	var i int64
	b.ReportAllocs()
	for b.Loop() {
		i++
		name = strconv.AppendInt(name[:prefix], i, 10)
		l, err := redislock.New(c, string(name))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawSetNXDel is the floor: SET NX PX and DEL, also two round trips
// but with no owner check, reentrancy or heartbeat.
func BenchmarkRawSetNXDel(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	key := redistest.Key(b)
	b.ReportAllocs()
	for b.Loop() {
		ok, err := c.SetNX(ctx, key, "owner", redislock.DefaultTTL).Result()
		if err != nil || !ok {
			b.Fatal("SET NX failed:", ok, err)
		}
		if err := c.Del(ctx, key).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReentrantAcquireRelease is a nested level on a held lock.
func BenchmarkReentrantAcquireRelease(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	l, err := redislock.New(c, redistest.Key(b), redislock.WithTTL(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		b.Fatal(err)
	}
	defer l.Release(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkContended is 8 goroutines, each with its own Lock, taking turns
// on one key and holding it 200µs. It reports the Redis commands each
// acquisition cost, from INFO commandstats on a private server.
func BenchmarkContended(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client(b)
	ctx := context.Background()
	name := redistest.Key(b)
	const workers = 8
	locks := make([]*redislock.Lock, workers)
	for i := range locks {
		l, err := redislock.New(c, name)
		if err != nil {
			b.Fatal(err)
		}
		locks[i] = l
	}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, l := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := l.Acquire(ctx); err != nil {
					b.Error(err)
					return
				}
				time.Sleep(200 * time.Microsecond)
				if err := l.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(commandCount(b, c)-1)/float64(b.N), "cmds/acquire")
	if testing.Verbose() {
		info, _ := c.Info(ctx, "commandstats").Result()
		b.Log(info)
	}
}

// commandCount is the number of commands the server has run since the last
// CONFIG RESETSTAT, the INFO call that reads it included.
func commandCount(tb testing.TB, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		if i := strings.Index(line, "calls="); i >= 0 {
			n, _ := strconv.ParseInt(strings.SplitN(line[i+6:], ",", 2)[0], 10, 64)
			total += n
		}
	}
	return total
}

// BenchmarkHandOff is two goroutines, each with its own Lock, taking turns
// on one key without holding it: each acquisition after the first is a
// release that hands the lock to the other goroutine's waiting Acquire, one
// round trip. Compare with BenchmarkAcquireRelease (two round trips per
// operation) in the same run.
func BenchmarkHandOff(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	name := redistest.Key(b)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	for range 2 {
		l, err := redislock.New(c, name)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				if err := l.Acquire(ctx); err != nil {
					b.Error(err)
					return
				}
				if err := l.Release(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
