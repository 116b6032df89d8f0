package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newLock returns a Lock on a name unique to the test.
func newLock(t *testing.T, c redis.UniversalClient, name string, opts ...redislock.Option) *redislock.Lock {
	t.Helper()
	l, err := redislock.New(c, name, opts...)
	require.NoError(t, err)
	return l
}

// eventually fails t unless cond holds within d, polling every millisecond.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// closedWithin reports how long ch took to close, failing t after d.
func closedWithin(t *testing.T, ch <-chan struct{}, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
		return time.Since(start)
	case <-timer.C:
		t.Fatalf("channel not closed within %v", d)
		return 0
	}
}

func TestMutualExclusion(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	counter := redistest.Key(t)
	const workers, rounds = 32, 15
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		l := newLock(t, c, name, redislock.WithTTL(5*time.Second))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				err := l.WithLock(ctx, exclusiveIncrement(c, counter, &inside, &overlaps))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := c.Get(ctx, counter).Int()
	require.NoError(t, err)
	assert.Equal(t, workers*rounds, got)
	assert.Zero(t, overlaps.Load())
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val(), "key left behind")
}

func TestReentrancy(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t))
	for i := 1; i <= 3; i++ {
		require.NoError(t, l.Acquire(ctx))
		assert.Equal(t, i, l.Count())
		assert.Equal(t, strconv.Itoa(i), c.HGet(ctx, l.Key(), "count").Val())
	}
	assert.Equal(t, l.Owner(), c.HGet(ctx, l.Key(), "owner").Val())
	for i := 2; i >= 0; i-- {
		require.NoError(t, l.Release(ctx))
		assert.Equal(t, i, l.Count())
	}
	assert.Zero(t, c.Exists(ctx, l.Key()).Val(), "key must be gone after the last release")
	assert.False(t, l.Held())
	err := l.Release(ctx)
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.NotErrorIs(t, err, redislock.ErrLockLost)
}

func TestTryAcquireContended(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	a := newLock(t, c, name)
	b := newLock(t, c, name)
	ok, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.False(t, b.Held())
	assert.ErrorIs(t, b.Release(ctx), redislock.ErrNotHeld)
	require.NoError(t, a.Release(ctx))
	ok, err = b.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	require.NoError(t, b.Release(ctx))
}

func TestHeartbeatKeepsShortLease(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(300*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	// The heartbeat is what is under test: nothing else renews the lease.
	time.Sleep(2 * time.Second)
	assert.True(t, l.Held())
	select {
	case <-l.Lost():
		t.Fatal("lost while the heartbeat was running")
	default:
	}
	ttl, err := l.TTL(ctx)
	require.NoError(t, err)
	assert.Greater(t, ttl, time.Duration(0))
	assert.LessOrEqual(t, ttl, 300*time.Millisecond)
	require.NoError(t, l.Release(ctx))
}

func TestWithoutHeartbeatExpires(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(100*time.Millisecond), redislock.WithoutHeartbeat())
	require.NoError(t, l.Acquire(ctx))
	lost := l.Lost()
	// Held turns false at the validity deadline, before the server lets the
	// key go; the Lost channel follows on a timer.
	eventually(t, time.Second, func() bool { return c.Exists(ctx, l.Key()).Val() == 0 }, "key expired")
	assert.False(t, l.Held(), "still held by its own account after the key expired")
	closedWithin(t, lost, time.Second)
	// The key is still there for a moment after the local deadline: that is
	// the margin that keeps the holder ahead of the server.
	err := l.Extend(ctx, 0)
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.ErrorIs(t, err, redislock.ErrLockLost)
}

func TestExtend(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(200*time.Millisecond), redislock.WithoutHeartbeat())
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Extend(ctx, 5*time.Second))
	ttl, err := l.TTL(ctx)
	require.NoError(t, err)
	assert.Greater(t, ttl, 4*time.Second)
	// Past the original lease the hold is still valid.
	time.Sleep(300 * time.Millisecond)
	assert.True(t, l.Held())
	// Extend never shortens a lease.
	require.NoError(t, l.Extend(ctx, 0))
	ttl, err = l.TTL(ctx)
	require.NoError(t, err)
	assert.Greater(t, ttl, 4*time.Second)
	assert.ErrorIs(t, l.Extend(ctx, -time.Second), redislock.ErrInvalidArgument)
	assert.ErrorIs(t, l.Extend(ctx, 2500*time.Microsecond), redislock.ErrInvalidArgument, "2 ms of lease leave no validity")
	require.NoError(t, l.Release(ctx))
	assert.ErrorIs(t, l.Extend(ctx, 0), redislock.ErrNotHeld)
}

func TestLossWhenKeyRemoved(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steal func(ctx context.Context, c *redis.Client, key string) error
	}{
		{"deleted", func(ctx context.Context, c *redis.Client, key string) error {
			return c.Del(ctx, key).Err()
		}},
		{"taken by another owner", func(ctx context.Context, c *redis.Client, key string) error {
			return c.HSet(ctx, key, "owner", "intruder").Err()
		}},
		{"overwritten with a string", func(ctx context.Context, c *redis.Client, key string) error {
			return c.Set(ctx, key, "x", time.Minute).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := redistest.Client(t)
			ctx := context.Background()
			const interval = 100 * time.Millisecond
			const ttl = 5 * time.Second
			l := newLock(t, c, redistest.Key(t), redislock.WithTTL(ttl), redislock.WithHeartbeat(interval))
			var cause error
			done := make(chan struct{})
			var withLockErr error
			go func() {
				defer close(done)
				withLockErr = l.WithLock(ctx, func(ctx context.Context) error {
					assert.NoError(t, tc.steal(ctx, c, l.Key()))
					<-ctx.Done()
					cause = context.Cause(ctx)
					return ctx.Err()
				})
			}()
			took := closedWithin(t, done, ttl)
			t.Logf("loss noticed after %v (heartbeat every %v)", took, interval)
			// Far below the TTL: the renewal noticed it, not the lease running
			// out. The bound is loose for a loaded machine.
			assert.Less(t, took, ttl/5)
			assert.ErrorIs(t, cause, redislock.ErrLockLost)
			assert.ErrorIs(t, withLockErr, redislock.ErrLockLost)
			assert.ErrorIs(t, withLockErr, context.Canceled)
			assert.False(t, l.Held())
			select {
			case <-l.Lost():
			default:
				t.Fatal("Lost not closed")
			}
			err := l.Extend(ctx, 0)
			assert.ErrorIs(t, err, redislock.ErrNotHeld)
			assert.ErrorIs(t, err, redislock.ErrLockLost)
			_ = c.Del(ctx, l.Key())
		})
	}
}

// A holder cut off from Redis must be told before another client can take
// the lock, that is, before the key expires on the server.
func TestLossWhenRedisStopsAnswering(t *testing.T) {
	srv := redistest.Start(t)
	proxy, holderClient := proxied(t, srv)
	ctx := context.Background()
	const ttl = 500 * time.Millisecond
	name := redistest.Key(t)
	holder := newLock(t, holderClient, name, redislock.WithTTL(ttl))
	rival := newLock(t, srv.Client(t), name, redislock.WithTTL(ttl))

	require.NoError(t, holder.Acquire(ctx))
	proxy.Blackhole()
	toldBeforeRival(t, holder, rival, 3*ttl)
	proxy.Heal()
	err := holder.Release(ctx)
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.ErrorIs(t, err, redislock.ErrLockLost)
}

func TestAcquireCancelledWhileWaiting(t *testing.T) {
	c := redistest.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	require.NoError(t, holder.Acquire(context.Background()))
	t.Cleanup(func() { _ = holder.Release(context.Background()) })

	waiter := newLock(t, c, name)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- waiter.Acquire(ctx) }()
	time.Sleep(20 * time.Millisecond) // let it wait
	cancel()
	start := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(2 * time.Second):
		t.Fatal("Acquire did not return after cancel")
	}
	assert.Less(t, time.Since(start), 500*time.Millisecond)
	assert.ErrorIs(t, err, redislock.ErrNotAcquired)
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, waiter.Held())
	assert.Equal(t, holder.Owner(), c.HGet(context.Background(), holder.Key(), "owner").Val())
}

func TestWaitTimeout(t *testing.T) {
	c := redistest.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	require.NoError(t, holder.Acquire(context.Background()))
	for _, d := range []time.Duration{50 * time.Millisecond, 0} {
		waiter := newLock(t, c, name, redislock.WithWaitTimeout(d))
		start := time.Now()
		err := waiter.Acquire(context.Background())
		assert.ErrorIs(t, err, redislock.ErrNotAcquired, "timeout %v", d)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "timeout %v", d)
		assert.GreaterOrEqual(t, time.Since(start), d)
		assert.False(t, waiter.Held())
	}
	// A zero wait still takes a free lock.
	require.NoError(t, holder.Release(context.Background()))
	waiter := newLock(t, c, name, redislock.WithWaitTimeout(0))
	require.NoError(t, waiter.Acquire(context.Background()))
	require.NoError(t, waiter.Release(context.Background()))
}

// A waiter whose backoff is far longer than the holder's remaining lease
// wakes when the lease runs out.
func TestWaitCappedByHolderLease(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	key := redislock.DefaultKeyPrefix + name
	// A holder that vanished without releasing: its lease runs 150 ms more.
	require.NoError(t, c.HSet(ctx, key, "owner", "crashed", "count", 1).Err())
	require.NoError(t, c.PExpire(ctx, key, 150*time.Millisecond).Err())
	waiter := newLock(t, c, name, redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	start := time.Now()
	require.NoError(t, waiter.Acquire(ctx))
	assert.Less(t, time.Since(start), 2*time.Second)
	require.NoError(t, waiter.Release(ctx))
}

func TestReleaseWithCancelledContext(t *testing.T) {
	c := redistest.Client(t)
	l := newLock(t, c, redistest.Key(t))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, l.Acquire(ctx))
	cancel()
	require.NoError(t, l.Release(ctx))
	assert.Zero(t, c.Exists(context.Background(), l.Key()).Val())
	assert.False(t, l.Held())
}

func TestContextReentrancy(t *testing.T) {
	c := redistest.Client(t)
	name := redistest.Key(t)
	outer := newLock(t, c, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := outer.WithLock(ctx, func(ctx context.Context) error {
		// Another Lock value on the same key and client re-enters.
		inner := newLock(t, c, name, redislock.WithWaitTimeout(time.Second))
		if err := inner.Acquire(ctx); err != nil {
			return err
		}
		assert.True(t, inner.Held())
		assert.Equal(t, 2, outer.Count())
		assert.Equal(t, "2", c.HGet(ctx, outer.Key(), "count").Val())
		if err := inner.WithLock(ctx, func(ctx context.Context) error {
			assert.Equal(t, 3, outer.Count())
			return nil
		}); err != nil {
			return err
		}
		if err := inner.Release(ctx); err != nil {
			return err
		}
		assert.Equal(t, 1, outer.Count())
		// Without the context, the same Lock waits like any other owner.
		ok, err := inner.TryAcquire(context.Background())
		assert.False(t, ok)
		return err
	})
	require.NoError(t, err)
	assert.Zero(t, c.Exists(ctx, outer.Key()).Val())
}

func TestWithLockPanics(t *testing.T) {
	c := redistest.Client(t)
	l := newLock(t, c, redistest.Key(t))
	func() {
		defer func() { assert.Equal(t, "boom", recover()) }()
		_ = l.WithLock(context.Background(), func(context.Context) error { panic("boom") })
	}()
	assert.False(t, l.Held())
	assert.Zero(t, c.Exists(context.Background(), l.Key()).Val())
}

func TestWithLockReturnsFnError(t *testing.T) {
	c := redistest.Client(t)
	l := newLock(t, c, redistest.Key(t))
	errFn := errors.New("fn failed")
	err := l.WithLock(context.Background(), func(context.Context) error { return errFn })
	assert.ErrorIs(t, err, errFn)
	assert.NotErrorIs(t, err, redislock.ErrLockLost)
	assert.False(t, l.Held())
}

func TestWrongTypeKey(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	l := newLock(t, c, name)
	require.NoError(t, c.Set(ctx, l.Key(), "not a lock", time.Minute).Err())
	err := l.Acquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
	ok, err := l.TryAcquire(ctx)
	assert.False(t, ok)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
	assert.False(t, l.Held())
	assert.Equal(t, "not a lock", c.Get(ctx, l.Key()).Val(), "the foreign key must be left alone")
}

func TestCorruptCount(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t))
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, c.HSet(ctx, l.Key(), "count", "many").Err())
	err := l.Acquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
	assert.Equal(t, 1, l.Count(), "a failed re-entry leaves the count")
	require.NoError(t, l.Release(ctx))
	assert.Zero(t, c.Exists(ctx, l.Key()).Val())
}

// A lease set by Extend is never cut short by a later renewal, so a holder
// that extended and is then cut off is still told before the key expires.
func TestExtendThenCutOffIsToldBeforeExpiry(t *testing.T) {
	srv := redistest.Start(t)
	proxy, hc := proxied(t, srv)
	other := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := newLock(t, hc, name, redislock.WithTTL(300*time.Millisecond), redislock.WithHeartbeat(100*time.Millisecond))
	rival := newLock(t, other, name, redislock.WithTTL(300*time.Millisecond), redislock.WithoutHeartbeat())

	require.NoError(t, holder.Acquire(ctx))
	require.NoError(t, holder.Extend(ctx, 1500*time.Millisecond))
	time.Sleep(250 * time.Millisecond) // heartbeat renewals with the 300 ms TTL
	assert.Greater(t, other.PTTL(ctx, holder.Key()).Val(), time.Second, "a renewal shortened the extended lease")
	proxy.Blackhole()
	toldBeforeRival(t, holder, rival, 3*time.Second)
	proxy.Heal()
}

// The reply to a last release is lost and go-redis sends it again: the
// retry finds the key gone, and that is not a loss.
func TestRetriedReleaseIsNotALoss(t *testing.T) {
	srv := redistest.Start(t)
	proxy, hc := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout, o.MaxRetries = time.Second, 3 })
	ctx := context.Background()
	l := newLock(t, hc, redistest.Key(t), redislock.WithoutHeartbeat())
	require.NoError(t, l.Acquire(ctx)) // loads the scripts: the release below is one EVALSHA
	require.NoError(t, l.Release(ctx))
	require.NoError(t, l.Acquire(ctx))
	lost := l.Lost()
	proxy.SetLatency(200 * time.Millisecond)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(300 * time.Millisecond) // the request has arrived; its reply is on its way
		proxy.Blackhole()                  // and is dropped
		time.Sleep(250 * time.Millisecond)
		proxy.SetLatency(0)
		proxy.Heal()
	}()
	err := l.Release(ctx)
	wg.Wait()
	require.NoError(t, err)
	assert.False(t, l.Held())
	select {
	case <-lost:
		t.Fatal("Lost closed by a release that succeeded")
	default:
	}
	assert.Zero(t, srv.Client(t).Exists(ctx, l.Key()).Val())
}

// The record that makes a retried last release harmless must not hide a
// real loss: a hold lost and then taken and released by another owner is
// reported lost at its release.
func TestReleaseAfterLossIsReportedDespiteOthersRelease(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	a := newLock(t, c, name, redislock.WithTTL(time.Minute), redislock.WithoutHeartbeat())
	b := newLock(t, c, name)
	require.NoError(t, a.Acquire(ctx))
	require.NoError(t, a.Release(ctx)) // a's own earlier release is on record too
	require.NoError(t, a.Acquire(ctx))
	require.NoError(t, c.Del(ctx, a.Key()).Err()) // lost: evicted, flushed, failed over
	require.NoError(t, b.Acquire(ctx))
	require.NoError(t, b.Release(ctx))
	err := a.Release(ctx)
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.ErrorIs(t, err, redislock.ErrLockLost)
}
