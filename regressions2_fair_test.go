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

// Checked (README: a fair lock is granted in arrival order; hand-offs go
// only to a local waiter at the head of the Redis queue): waiters that
// queue one after the other on three clients, the first and third on the
// holder's client, get the lock in that order.
func TestRegressionFairOrderAcrossClients(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	clients := []*redis.Client{srv.Client(t), srv.Client(t), srv.Client(t)}
	name := redistest.Key(t)
	var handoffs atomic.Int64
	for _, c := range clients {
		c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
			if args := cmd.Args(); len(args) > 3 && cmd.Name() == "evalsha" && args[2] == 5 {
				handoffs.Add(1)
			}
		}})
	}
	holder := newLock(t, clients[0], name, redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	queue, _ := redislock.FairQueueKeys(holder.Key())

	order := []int{0, 1, 0, 2, 1, 0}
	var mu sync.Mutex
	var got []int
	var wg sync.WaitGroup
	for i, ci := range order {
		l := newLock(t, clients[ci], name, redislock.WithFair())
		wg.Add(1)
		go func() {
			defer wg.Done()
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := l.Acquire(actx); err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
			assert.NoError(t, l.Release(ctx))
		}()
		eventually(t, 3*time.Second, func() bool { return clients[0].ZCard(ctx, queue).Val() == int64(i+1) }, "waiter not queued")
	}
	require.NoError(t, holder.Release(ctx))
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, got)
	t.Logf("%d fair hand-offs", handoffs.Load())
}

// Checked: fair hand-offs keep one holder at a time and growing tokens,
// with three clients, two Locks each, waiters with short deadlines.
func TestRegressionFairChurnThreeClients(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	check := srv.Client(t)
	name := redistest.Key(t)
	probe := newLock(t, check, name, redislock.WithFair())
	e := &exclusion{c: check, key: probe.Key()}
	var handoffs atomic.Int64
	var locks []*redislock.Lock
	for range 3 {
		c := srv.Client(t)
		c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
			if args := cmd.Args(); len(args) > 3 && cmd.Name() == "evalsha" && args[2] == 5 {
				handoffs.Add(1)
			}
		}})
		for range 2 {
			locks = append(locks, newLock(t, c, name, redislock.WithFair(), redislock.WithTTL(2*time.Second)))
		}
	}
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for g, l := range locks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000 && time.Now().Before(stop); i++ {
				actx, cancel := context.WithTimeout(ctx, time.Second)
				if i%5 == g%5 {
					cancel()
					actx, cancel = context.WithTimeout(ctx, 3*time.Millisecond)
				}
				err := l.Acquire(actx)
				cancel()
				if err != nil {
					failedAcquire(e, l, err, false)
					continue
				}
				e.enter(ctx, l.Owner(), l.Token())
				e.exit(l.Owner())
				if err := l.Release(ctx); err != nil {
					e.problem("release: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	for _, p := range e.problems {
		t.Error(p)
	}
	for _, l := range locks {
		assert.False(t, l.Held())
	}
	assert.Zero(t, check.Exists(ctx, probe.Key()).Val(), "key left")
	t.Logf("%d sections, %d fair hand-offs", e.entries, handoffs.Load())
	require.Positive(t, handoffs.Load())
}
