package redislock_test

import (
	"context"
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

func newSemaphore(t *testing.T, c redis.UniversalClient, name string, limit int, opts ...redislock.Option) *redislock.Lock {
	t.Helper()
	l, err := redislock.NewSemaphore(c, name, limit, opts...)
	require.NoError(t, err)
	return l
}

// At most limit owners hold at once, each with its own token; everyone
// waiting gets in.
func TestSemaphoreLimit(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	const limit, workers, rounds = 3, 8, 15
	var inside, most atomic.Int32
	var mu sync.Mutex
	tokens := map[int64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		l := newSemaphore(t, c, name, limit)
		wg.Go(func() {
			for r := 0; r < rounds; r++ {
				err := l.WithLock(ctx, func(ctx context.Context) error {
					n := inside.Add(1)
					defer inside.Add(-1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					mu.Lock()
					assert.False(t, tokens[l.Token()], "a token is issued once")
					tokens[l.Token()] = true
					mu.Unlock()
					time.Sleep(time.Millisecond)
					return nil
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, most.Load(), int32(limit), "more than limit holders at once")
	assert.Equal(t, int32(limit), most.Load(), "the permits were used in parallel")
	assert.Len(t, tokens, workers*rounds)
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val(), "nothing stays after the last release")
}

func TestSemaphoreBasics(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	a := newSemaphore(t, c, name, 2)
	b := newSemaphore(t, c, name, 2)
	d := newSemaphore(t, c, name, 2)

	require.NoError(t, a.Acquire(ctx))
	require.NoError(t, a.Acquire(ctx), "re-entry")
	assert.Equal(t, 2, a.Count())
	ok, err := b.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Greater(t, b.Token(), a.Token(), "tokens increase per name")
	ok, err = d.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "both permits are taken")
	n, err := redislock.SemaphoreHolders(ctx, c, name)
	require.NoError(t, err)
	assert.Equal(t, 2, n)

	mismatch, err := redislock.NewSemaphore(c, name, 3)
	require.NoError(t, err)
	_, err = mismatch.TryAcquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrLimitMismatch)
	assert.Contains(t, err.Error(), "has limit 2")

	require.NoError(t, a.Release(ctx))
	assert.True(t, a.Held(), "one level left")
	require.NoError(t, a.Release(ctx))
	assert.False(t, a.Held())
	ok, err = d.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "a released permit is free")
	require.NoError(t, b.Release(ctx))
	require.NoError(t, d.Release(ctx))
	n, err = redislock.SemaphoreHolders(ctx, c, name)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val())
	assert.ErrorIs(t, a.Release(ctx), redislock.ErrNotHeld)
}

func TestSemaphoreBadInput(t *testing.T) {
	c := redistest.Client(t)
	for _, limit := range []int{0, -1} {
		_, err := redislock.NewSemaphore(c, "n", limit)
		assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
	}
	_, err := redislock.NewSemaphore(c, "", 1)
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
	_, err = redislock.NewSemaphore(nil, "n", 1)
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument)

	ctx := context.Background()
	name := redistest.Key(t)
	require.NoError(t, c.Set(ctx, "lock:"+name, "x", time.Minute).Err())
	s := newSemaphore(t, c, name, 1)
	_, err = s.TryAcquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
	_, err = redislock.SemaphoreHolders(ctx, c, name)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
}

// A holder that dies (its heartbeat stops) frees its permit when its lease
// ends on the server, and a waiter's sleep is capped by that lease.
func TestSemaphoreDeadHolderFreesPermit(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	dead := newSemaphore(t, c, name, 1, redislock.WithTTL(300*time.Millisecond), redislock.WithoutHeartbeat())
	require.NoError(t, dead.Acquire(ctx))
	waiter := newSemaphore(t, c, name, 1, redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	start := time.Now()
	require.NoError(t, waiter.Acquire(ctx))
	took := time.Since(start)
	assert.Less(t, took, 2*time.Second, "the waiter slept past the dead holder's lease")
	assert.GreaterOrEqual(t, took, 200*time.Millisecond, "the permit was taken before the lease ended")
	closedWithin(t, dead.Lost(), time.Second)
	require.NoError(t, waiter.Release(ctx))
}

// The heartbeat keeps a permit past many TTLs, and a permit removed on the
// server is reported lost.
func TestSemaphoreHeartbeatAndLoss(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	l := newSemaphore(t, c, name, 2, redislock.WithTTL(200*time.Millisecond), redislock.WithHeartbeat(50*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	time.Sleep(time.Second)
	require.True(t, l.Held(), "renewed")
	n, err := redislock.SemaphoreHolders(ctx, c, name)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, c.Del(ctx, "lock:"+name).Err())
	closedWithin(t, l.Lost(), time.Second)
	err = l.Release(ctx)
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.ErrorIs(t, err, redislock.ErrLockLost)
}

// A release wakes a waiter at once, each release one, without polling.
func TestSemaphoreReleaseWakesWaiters(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	const limit = 2
	holders := make([]*redislock.Lock, limit)
	for i := range holders {
		holders[i] = newSemaphore(t, c, name, limit)
		require.NoError(t, holders[i].Acquire(ctx))
	}
	slow := redislock.WithRetryBackoff(5*time.Second, 5*time.Second)
	got := make(chan *redislock.Lock, limit)
	for range limit {
		w := newSemaphore(t, c, name, limit, slow)
		go func() {
			if assert.NoError(t, w.Acquire(ctx)) {
				got <- w
			}
		}()
	}
	time.Sleep(200 * time.Millisecond) // both waiters tried and sleep
	start := time.Now()
	for _, h := range holders {
		require.NoError(t, h.Release(ctx))
	}
	for range limit {
		select {
		case w := <-got:
			require.NoError(t, w.Release(ctx))
		case <-time.After(3 * time.Second):
			t.Fatal("a waiter was not woken by a release")
		}
	}
	assert.Less(t, time.Since(start), 2*time.Second)
}
