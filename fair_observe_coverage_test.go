package redislock_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// A fair waiter whose client is closed mid-wait (a dead process) cannot
// leave the queue; it is skipped once its waiter lease ends.
func TestFairDeadWaiterSkipped(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	holder := newLock(t, srv.Client(t), "fair-dead", redislock.WithFair())
	dead := srv.Client(t)
	w1 := newLock(t, dead, "fair-dead", redislock.WithFair())
	w2 := newLock(t, srv.Client(t), "fair-dead", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	queue, _ := redislock.FairQueueKeys(holder.Key())
	e1 := make(chan error, 1)
	go func() { e1 <- w1.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool { return srv.Client(t).ZCard(ctx, queue).Val() == 1 }, "w1 queued")
	e2 := make(chan error, 1)
	go func() { e2 <- w2.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool { return srv.Client(t).ZCard(ctx, queue).Val() == 2 }, "w2 queued")
	require.NoError(t, dead.Close())
	require.Error(t, <-e1)
	start := time.Now()
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-e2)
	took := time.Since(start)
	require.NoError(t, w2.Release(ctx))
	require.Less(t, took, redislock.DefaultWaiterTTL+1500*time.Millisecond, "dead head not skipped in time")
	t.Logf("w2 got the lock %v after the release, behind a dead head", took)
}

// A holder that never releases: the head notices the expiry by itself.
func TestFairHeadNoticesExpiry(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	hc := srv.Client(t)
	holder := newLock(t, hc, "fair-exp", redislock.WithFair(), redislock.WithTTL(time.Second), redislock.WithoutHeartbeat())
	w := newLock(t, srv.Client(t), "fair-exp", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	start := time.Now()
	require.NoError(t, w.Acquire(ctx))
	took := time.Since(start)
	require.NoError(t, w.Release(ctx))
	require.Less(t, took, 2500*time.Millisecond)
	t.Logf("head took the expired lock after %v (TTL 1s)", took)
}

// Release messages lost (pub/sub connections killed): the head still gets
// the lock within its polling bound, and nothing but the latch and the
// fencing counter is left.
func TestFairLostMessagesAndKeysLeft(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	admin := srv.Client(t)
	holder := newLock(t, srv.Client(t), "fair-msg", redislock.WithFair())
	w := newLock(t, srv.Client(t), "fair-msg", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	queue, _ := redislock.FairQueueKeys(holder.Key())
	e := make(chan error, 1)
	go func() { e <- w.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool { return admin.ZCard(ctx, queue).Val() == 1 }, "queued")
	eventually(t, 2*time.Second, func() bool {
		return strings.Contains(admin.ClientList(ctx).Val(), "sub=1")
	}, "subscribed")
	require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	start := time.Now()
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-e)
	took := time.Since(start)
	require.NoError(t, w.Release(ctx))
	require.Less(t, took, 1500*time.Millisecond)
	keys := admin.Keys(ctx, "*").Val()
	for _, k := range keys {
		if strings.HasSuffix(k, ":fence") {
			continue
		}
		pttl := admin.PTTL(ctx, k).Val()
		require.True(t, pttl > 0 && pttl <= 10*time.Second, "key %s left with pttl %v", k, pttl)
	}
	t.Logf("lost message: acquired %v after the release; keys left: %v", took, keys)
}

// Every loss is reported exactly once, whichever path finds it.
func TestLossReportedOnce(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	type counts struct{ acq, rel, relLast, loss int }
	run := func(t *testing.T, name string, opts []redislock.Option, levels int, lose func(l *redislock.Lock), releases int) counts {
		var mu sync.Mutex
		var c counts
		obs := redislock.ObserverFunc(func(e redislock.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch e.Kind {
			case redislock.EventAcquire:
				c.acq++
			case redislock.EventRelease:
				c.rel++
				if e.Last {
					c.relLast++
				}
			case redislock.EventLoss:
				c.loss++
			}
		})
		l := newLock(t, srv.Client(t), name, append(opts, redislock.WithObserver(obs))...)
		for range levels {
			require.NoError(t, l.Acquire(ctx))
		}
		lose(l)
		for range releases {
			_ = l.Release(ctx)
		}
		_ = l.Release(ctx) // one more: nothing held
		mu.Lock()
		defer mu.Unlock()
		return c
	}
	del := func(l *redislock.Lock) { require.NoError(t, srv.Client(t).Del(ctx, l.Key()).Err()) }
	t.Run("deadline", func(t *testing.T) {
		c := run(t, "once-deadline", []redislock.Option{redislock.WithoutHeartbeat(), redislock.WithTTL(300 * time.Millisecond)}, 1,
			func(l *redislock.Lock) { <-l.Lost() }, 1)
		require.Equal(t, counts{acq: 1, loss: 1}, c)
	})
	t.Run("heartbeat", func(t *testing.T) {
		c := run(t, "once-hb", []redislock.Option{redislock.WithTTL(time.Second), redislock.WithHeartbeat(50 * time.Millisecond)}, 1,
			func(l *redislock.Lock) { del(l); <-l.Lost() }, 1)
		require.Equal(t, counts{acq: 1, loss: 1}, c)
	})
	t.Run("inner release", func(t *testing.T) {
		c := run(t, "once-inner", []redislock.Option{redislock.WithoutHeartbeat()}, 2, del, 2)
		require.Equal(t, counts{acq: 2, rel: 1, loss: 1}, c)
	})
	t.Run("last release", func(t *testing.T) {
		c := run(t, "once-last", []redislock.Option{redislock.WithoutHeartbeat()}, 1, del, 1)
		require.Equal(t, counts{acq: 1, rel: 1, relLast: 1, loss: 1}, c)
	})
}

// Under churn (every holder asks again as soon as it released), a fair lock
// serves its waiters in turn: no waiter gets the lock twice while another
// one that was queued before its second ask still waits.
func TestFairRoundRobinUnderChurn(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	const n, rounds = 4, 4
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		l := newLock(t, srv.Client(t), "fair-churn", redislock.WithFair())
		wg.Go(func() {
			<-start
			for range rounds {
				if !assert.NoError(t, l.Acquire(ctx)) {
					return
				}
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				assert.NoError(t, l.Release(ctx))
			}
		})
	}
	close(start)
	wg.Wait()
	require.Len(t, order, n*rounds)
	// After the first n acquisitions, each window of n is a permutation.
	for s := n; s+n <= len(order); s += n {
		seen := map[int]bool{}
		for _, v := range order[s : s+n] {
			seen[v] = true
		}
		assert.Len(t, seen, n, "window %d of the order %v is not round robin", s/n, order)
	}
	t.Logf("order: %v", order)
}

// Observe called by the heartbeat (renewal, loss) may call back into the
// Lock: a Release from a renewal event and an Acquire from a loss event
// both complete.
func TestHeartbeatObserverCallsBack(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var l *redislock.Lock
	done := make(chan error, 2)
	var renewOnce, lossOnce sync.Once
	obs := redislock.ObserverFunc(func(e redislock.Event) {
		switch e.Kind {
		case redislock.EventRenewal:
			renewOnce.Do(func() { done <- l.Release(ctx) })
		case redislock.EventLoss:
			lossOnce.Do(func() { done <- l.Acquire(ctx) })
		}
	})
	l = newLock(t, srv.Client(t), "hb-callback", redislock.WithObserver(obs),
		redislock.WithTTL(time.Second), redislock.WithHeartbeat(50*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, <-done, "Release from a renewal event")
	require.False(t, l.Held())
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, srv.Client(t).Del(ctx, l.Key()).Err())
	require.NoError(t, <-done, "Acquire from a loss event")
	require.True(t, l.Held())
	require.NoError(t, l.Release(ctx))
}
