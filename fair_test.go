package redislock_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// fairKeys returns the queue keys of a fair lock's key on the server.
func fairKeys(t *testing.T, c *redis.Client, key string) []string {
	t.Helper()
	var keys []string
	for _, kind := range []string{"queue", "waiters"} {
		found, err := c.Keys(context.Background(), "redislock:{*}:"+kind+":"+key).Result()
		require.NoError(t, err)
		keys = append(keys, found...)
	}
	return keys
}

// Waiters on different clients (as in different processes) get the lock in
// the order they asked for it.
func TestFairLockServesInOrder(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const n = 5
	holder := newLock(t, srv.Client(t), "fifo", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))

	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		c := srv.Client(t) // a notifier of its own, as another process has
		w := newLock(t, c, "fifo", redislock.WithFair())
		wg.Go(func() {
			if !assert.NoError(t, w.Acquire(ctx)) {
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			assert.NoError(t, w.Release(ctx))
		})
		// Each waiter has queued before the next one starts.
		queue, _ := redislock.FairQueueKeys(holder.Key())
		eventually(t, 2*time.Second, func() bool {
			return srv.Client(t).ZCard(ctx, queue).Val() == int64(i+1)
		}, "waiter queued")
	}
	require.NoError(t, holder.Release(ctx))
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4}, order, "served in the order they asked")
	assert.Empty(t, fairKeys(t, srv.Client(t), holder.Key()), "no queue left once nobody waits")
}

// A release names the queue's head, which gets the lock within a round trip
// or so, without waiting for its next renewal of its waiter lease.
func TestFairLockHandOffIsPrompt(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	holder := newLock(t, srv.Client(t), "prompt", redislock.WithFair())
	waiter := newLock(t, srv.Client(t), "prompt", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	got := make(chan time.Time, 1)
	go func() {
		if assert.NoError(t, waiter.Acquire(ctx)) {
			got <- time.Now()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	at := <-got
	assert.Less(t, at.Sub(released), 500*time.Millisecond, "the named waiter was not woken by the release")
	require.NoError(t, waiter.Release(ctx))
}

// A waiter whose process died is skipped once its waiter lease ends on the
// server's clock; one that gives up leaves the queue at once.
func TestFairLockSkipsDeadAndDepartedWaiters(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	holder := newLock(t, c, "dead", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))

	// A waiter that gives up after 100 ms, queued first.
	quitter := newLock(t, srv.Client(t), "dead", redislock.WithFair())
	qctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, quitter.Acquire(qctx), redislock.ErrNotAcquired)
	keys := fairKeys(t, c, holder.Key())
	require.Len(t, keys, 0, "the quitter left the queue: %v", keys)

	// A dead waiter: queued by hand, with a lease that ends in 300 ms.
	queueKey, waitersKey := redislock.FairQueueKeys(holder.Key())
	tm, err := c.Time(ctx).Result()
	require.NoError(t, err)
	require.NoError(t, c.ZAdd(ctx, queueKey, redis.Z{Score: float64(tm.UnixMicro()), Member: "ghost"}).Err())
	require.NoError(t, c.ZAdd(ctx, waitersKey, redis.Z{Score: float64(tm.UnixMilli() + 300), Member: "ghost"}).Err())

	waiter := newLock(t, srv.Client(t), "dead", redislock.WithFair())
	got := make(chan time.Time, 1)
	go func() {
		if assert.NoError(t, waiter.Acquire(ctx)) {
			got <- time.Now()
		}
	}()
	eventually(t, 2*time.Second, func() bool { return c.ZCard(ctx, queueKey).Val() == 2 }, "waiter queued behind the ghost")
	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	at := <-got
	took := at.Sub(released)
	assert.Less(t, took, redislock.DefaultWaiterTTL, "the dead waiter was not skipped once its lease ended")
	require.NoError(t, waiter.Release(ctx))
	assert.Empty(t, fairKeys(t, c, holder.Key()))
}

func TestWithFairOnlyForNew(t *testing.T) {
	c := redistest.Client(t)
	_, err := redislock.NewSemaphore(c, "n", 2, redislock.WithFair())
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
	_, err = redislock.NewRWLock(c, "n", redislock.WithFair())
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
}

// A release wakes only the waiter it names: the others do not try.
func TestFairLockReleaseWakesOnlyTheHead(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	holder := newLock(t, c, "herd", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	const n = 5
	got := make(chan *redislock.Lock, n)
	queue, _ := redislock.FairQueueKeys(holder.Key())
	for i := range n {
		w := newLock(t, srv.Client(t), "herd", redislock.WithFair())
		go func() {
			if assert.NoError(t, w.Acquire(ctx)) {
				got <- w
			}
		}()
		eventually(t, 2*time.Second, func() bool { return c.ZCard(ctx, queue).Val() == int64(i+1) }, "queued")
	}
	time.Sleep(50 * time.Millisecond) // every waiter sleeps
	require.NoError(t, c.ConfigResetStat(ctx).Err())
	require.NoError(t, holder.Release(ctx))
	first := <-got
	calls := evalshaCalls(t, c)
	assert.GreaterOrEqual(t, calls, int64(2), "the release and the named waiter's attempt are counted")
	assert.LessOrEqual(t, calls, int64(3), "the release and the named waiter's attempt, and at most one renewal of a waiter lease: %d calls", calls)
	require.NoError(t, first.Release(ctx))
	for range n - 1 {
		w := <-got
		require.NoError(t, w.Release(ctx))
	}
}

// evalshaCalls reads how many EVALSHA calls the server ran since its
// statistics were reset.
func evalshaCalls(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			var n int64
			for _, r := range rest {
				if r < '0' || r > '9' {
					break
				}
				n = n*10 + int64(r-'0')
			}
			return n
		}
	}
	return 0
}

// TryAcquire and a zero wait timeout never wait, so they do not queue: a
// waiter that does is served right after the release, not after their
// waiter lease.
func TestFairTryAcquireDoesNotQueue(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	holder := newLock(t, c, "try", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	try := newLock(t, srv.Client(t), "try", redislock.WithFair())
	ok, err := try.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	once := newLock(t, srv.Client(t), "try", redislock.WithFair(), redislock.WithWaitTimeout(0))
	assert.ErrorIs(t, once.Acquire(ctx), redislock.ErrNotAcquired)
	queue, _ := redislock.FairQueueKeys(holder.Key())
	assert.Zero(t, c.Exists(ctx, queue).Val(), "a caller that does not wait is not queued")

	waiter := newLock(t, srv.Client(t), "try", redislock.WithFair())
	got := make(chan time.Time, 1)
	go func() {
		if assert.NoError(t, waiter.Acquire(ctx)) {
			got <- time.Now()
		}
	}()
	eventually(t, 2*time.Second, func() bool { return c.ZCard(ctx, queue).Val() == 1 }, "the waiter queued")
	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	assert.Less(t, (<-got).Sub(released), 500*time.Millisecond)
	require.NoError(t, waiter.Release(ctx))
}
