package redislock_test

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// soakStats is a client hook that counts the heartbeat's pipelines (the
// client's only ones), their script calls and keys, and those in flight.
type soakStats struct {
	inflight           atomic.Int32
	pipes, calls, keys atomic.Int64
	maxCalls           atomic.Int64
}

func (s *soakStats) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (s *soakStats) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (s *soakStats) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		calls, keys := int64(0), int64(0)
		for _, cmd := range cmds {
			if name := cmd.Name(); name == "evalsha" || name == "eval" {
				n, _ := cmd.Args()[2].(int)
				calls, keys = calls+1, keys+int64(n)
			}
		}
		if calls == 0 {
			return next(ctx, cmds)
		}
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		s.pipes.Add(1)
		s.calls.Add(calls)
		s.keys.Add(keys)
		for m := s.maxCalls.Load(); calls > m && !s.maxCalls.CompareAndSwap(m, calls); m = s.maxCalls.Load() {
		}
		return next(ctx, cmds)
	}
}

// goroutines returns how many goroutines there are and how many of them run
// the heartbeat's code, from one snapshot.
func goroutines() (total, heartbeat int) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		total++
		if bytes.Contains(g, []byte("redislock.(*heartbeat)")) {
			heartbeat++
		}
	}
	return total, heartbeat
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHeartbeatSoak holds 100,000 locks (TTL 10 s) through one client of one
// server for 30 s, and measures what the heartbeat costs: goroutines between
// rounds (none), script calls per round trip and keys per call (100 per call
// but for each round's last), and heap per lock. Every lock must be held,
// and its key present, at the end. It runs only with REDISLOCK_SOAK=1:
//
//	REDISLOCK_SOAK=1 REDISLOCK_REQUIRE_REDIS=1 go test -count=1 -run TestHeartbeatSoak -v -timeout 10m .
func TestHeartbeatSoak(t *testing.T) {
	if os.Getenv("REDISLOCK_SOAK") != "1" {
		t.Skip("soak test: set REDISLOCK_SOAK=1 to hold 100,000 locks for 30 s")
	}
	const n, ttl, hold = 100_000, 10 * time.Second, 30 * time.Second
	srv := redistest.Start(t)
	c := srv.Client(t)
	stats := &soakStats{}
	c.AddHook(stats)
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx).Err())
	baseline, _ := goroutines()

	prefix := redistest.Key(t) + ":"
	heap0 := heapAlloc()
	locks := make([]*redislock.Lock, n)
	for i := range locks {
		locks[i] = newLock(t, c, prefix+strconv.Itoa(i), redislock.WithTTL(ttl))
	}
	heap1 := heapAlloc()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if err := locks[i].Acquire(ctx); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, failed.Load(), "acquires failed")
	acquired := time.Since(start)
	heap2 := heapAlloc()
	t.Logf("acquired %d locks in %v; heap per lock: %d B from New, %d B more from Acquire (hold and heartbeat), %d B in all",
		n, acquired.Round(time.Millisecond), (heap1-heap0)/n, (heap2-heap1)/n, (heap2-heap0)/n)
	assert.LessOrEqual(t, (heap2-heap1)/n, uint64(1024), "heap per hold")

	pipes0, calls0, keys0 := stats.pipes.Load(), stats.calls.Load(), stats.keys.Load()
	samples, between, extra := 0, 0, 0
	for end := time.Now().Add(hold); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		samples++
		total, hb := goroutines()
		if hb == 0 && stats.inflight.Load() == 0 {
			between++
			extra = max(extra, total-baseline)
		}
	}
	pipes, calls, keys := stats.pipes.Load()-pipes0, stats.calls.Load()-calls0, stats.keys.Load()-keys0
	t.Logf("%v held: %d round trips, %d script calls, %d keys renewed; %.1f calls per round trip (max %d), %.1f keys per call",
		hold, pipes, calls, keys, float64(calls)/float64(max(pipes, 1)), stats.maxCalls.Load(), float64(keys)/float64(max(calls, 1)))
	t.Logf("goroutines: %d samples, %d between rounds, at most %d beyond the %d before the locks", samples, between, extra, baseline)
	assert.Positive(t, between, "no moment between rounds")
	assert.Zero(t, extra, "goroutines between rounds")
	assert.GreaterOrEqual(t, keys, int64(2*n), "each lock renewed about every %v", ttl/3)
	assert.GreaterOrEqual(t, float64(keys)/float64(max(calls, 1)), 50.0, "keys per script call")
	assert.LessOrEqual(t, stats.maxCalls.Load(), int64(n/50), "script calls per round trip")

	for lo := 0; lo < n; lo += 1000 {
		pipe := c.Pipeline()
		cmds := make([]*redis.StringCmd, 0, 1000)
		for _, l := range locks[lo:min(lo+1000, n)] {
			require.True(t, l.Held(), l.Name())
			cmds = append(cmds, pipe.HGet(ctx, l.Key(), "owner"))
		}
		_, err := pipe.Exec(ctx)
		require.NoError(t, err)
		for i, cmd := range cmds {
			require.Equal(t, locks[lo+i].Owner(), cmd.Val(), locks[lo+i].Name())
		}
	}
	for _, l := range locks {
		require.NoError(t, l.Release(ctx))
	}
}
