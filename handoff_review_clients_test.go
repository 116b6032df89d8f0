package redislock_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/clustertest"
	"github.com/redislock/redislock/internal/redistest"
)

// reviewContend runs goroutines that take turns on the Locks mk makes (one each),
// for a bounded time, and returns how many sections ran and how many
// hand-offs c sent. e checks the sections.
func reviewContend(t *testing.T, c interface{ AddHook(redis.Hook) }, e *exclusion, n int, mk func() *redislock.Lock) (int, int64) {
	t.Helper()
	ctx := context.Background()
	var handoffs atomic.Int64
	c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
		if isHandOff(cmd) {
			handoffs.Add(1)
		}
	}})
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	var locks []*redislock.Lock
	for g := 0; g < n; g++ {
		l := mk()
		locks = append(locks, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && time.Now().Before(stop); i++ {
				actx, cancel := ctx, context.CancelFunc(func() {})
				if i%4 == g%4 {
					actx, cancel = context.WithTimeout(ctx, 2*time.Millisecond)
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
	require.Positive(t, e.entries)
	return e.entries, handoffs.Load()
}

// Checked: on a Ring and on a Cluster, hand-offs keep one holder at
// a time and leave nothing held.
func TestHandOffOddClients(t *testing.T) {
	ctx := context.Background()
	t.Run("ring", func(t *testing.T) {
		addrs := map[string]string{"a": redistest.Start(t).Addr(), "b": redistest.Start(t).Addr()}
		r := redis.NewRing(&redis.RingOptions{Addrs: addrs})
		defer r.Close()
		check := redis.NewRing(&redis.RingOptions{Addrs: addrs})
		defer check.Close()
		for i := 0; i < 3; i++ {
			name := redistest.Key(t) + ":" + strconv.Itoa(i)
			probe := newLock(t, check, name)
			e := &exclusion{c: check, key: probe.Key()}
			n, h := reviewContend(t, r, e, 4, func() *redislock.Lock { return newLock(t, r, name) })
			t.Logf("%s: %d sections, %d hand-offs", name, n, h)
			assert.Zero(t, check.Exists(ctx, probe.Key()).Val(), "key left")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		cl := clustertest.StartCluster(t, 3, 0)
		cc := cl.Client(t)
		check := cl.Client(t)
		name := redistest.Key(t)
		probe := newLock(t, check, name)
		e := &exclusion{c: check, key: probe.Key()}
		n, h := reviewContend(t, cc, e, 4, func() *redislock.Lock { return newLock(t, cc, name) })
		t.Logf("%d sections, %d hand-offs", n, h)
		assert.Positive(t, h)
		assert.Zero(t, check.Exists(ctx, probe.Key()).Val(), "key left")
	})
}

// Checked: semaphores and RW locks never hand off, and keep their
// exclusion under the same churn; so does a fair lock, which hands off only
// to the head of its queue (see TestFairHandOffFollowsTheQueue).
func TestHandOffNotForOtherPrimitives(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		name string
		mk   func(c *redis.Client, name string) *redislock.Lock
	}{
		{"fair", func(c *redis.Client, name string) *redislock.Lock {
			return newLock(t, c, name, redislock.WithFair())
		}},
		{"semaphore of 1", func(c *redis.Client, name string) *redislock.Lock {
			l, err := redislock.NewSemaphore(c, name, 1)
			require.NoError(t, err)
			return l
		}},
		{"rw writer", func(c *redis.Client, name string) *redislock.Lock {
			rw, err := redislock.NewRWLock(c, name)
			require.NoError(t, err)
			return rw.Writer()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.Client(t)
			name := redistest.Key(t)
			var e exclusion
			if tc.name == "fair" {
				e.c, e.key = srv.Client(t), tc.mk(c, name).Key()
			}
			n, h := reviewContend(t, c, &e, 4, func() *redislock.Lock { return tc.mk(c, name) })
			t.Logf("%d sections, %d hand-offs", n, h)
			assert.Positive(t, n, "sections")
			if tc.name != "fair" {
				assert.Zero(t, h, "hand-offs sent")
			}
		})
	}
}
