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

func newRWLock(t *testing.T, c redis.UniversalClient, name string, opts ...redislock.Option) *redislock.RWLock {
	t.Helper()
	rw, err := redislock.NewRWLock(c, name, opts...)
	require.NoError(t, err)
	return rw
}

// Readers share, a writer excludes everyone: never a reader with a writer,
// never two writers, and readers do overlap.
func TestRWLockExclusion(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	var readers, writers, mostReaders atomic.Int32
	var bad atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		rw := newRWLock(t, c, name)
		write := w%4 == 0
		wg.Go(func() {
			for r := 0; r < 15; r++ {
				var err error
				if write {
					err = rw.Writer().WithLock(ctx, func(context.Context) error {
						if writers.Add(1) != 1 || readers.Load() != 0 {
							bad.Add(1)
						}
						time.Sleep(time.Millisecond)
						writers.Add(-1)
						return nil
					})
				} else {
					err = rw.Reader().WithLock(ctx, func(context.Context) error {
						n := readers.Add(1)
						if writers.Load() != 0 {
							bad.Add(1)
						}
						for m := mostReaders.Load(); n > m && !mostReaders.CompareAndSwap(m, n); m = mostReaders.Load() {
						}
						time.Sleep(2 * time.Millisecond)
						readers.Add(-1)
						return nil
					})
				}
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, bad.Load(), "a reader with a writer, or two writers")
	assert.Greater(t, mostReaders.Load(), int32(1), "readers shared the lock")
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val(), "nothing stays after the last release")
}

// Once a writer waits, new readers wait behind it.
func TestRWLockWriterNotStarved(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	first := newRWLock(t, c, name)
	require.NoError(t, first.Reader().Acquire(ctx))

	writer := newRWLock(t, c, name)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		assert.NoError(t, writer.Writer().Acquire(ctx))
	}()
	time.Sleep(100 * time.Millisecond) // the writer tried and waits

	late := newRWLock(t, c, name)
	ok, err := late.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "a new reader got in ahead of a waiting writer")

	require.NoError(t, first.Reader().Release(ctx))
	select {
	case <-wrote:
	case <-time.After(2 * time.Second):
		t.Fatal("the writer was not woken by the last reader's release")
	}
	ok, err = late.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "a reader while the writer holds")
	require.NoError(t, writer.Writer().Release(ctx))
	ok, err = late.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "readers get in after the writer")
	require.NoError(t, late.Reader().Release(ctx))
}

// An owner's writer may take its reader (a downgrade); its reader asking
// for the writer fails at once.
func TestRWLockDowngradeAndDeadlock(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	rw := newRWLock(t, c, name)
	other := newRWLock(t, c, name)

	require.NoError(t, rw.Writer().Acquire(ctx))
	ok, err := rw.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the writer's own reader gets in")
	require.NoError(t, rw.Writer().Release(ctx))
	ok, err = other.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "after the downgrade other readers share")
	require.NoError(t, other.Reader().Release(ctx))

	start := time.Now()
	err = rw.Writer().Acquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWouldDeadlock)
	assert.Less(t, time.Since(start), time.Second)
	require.NoError(t, rw.Reader().Release(ctx))
	require.NoError(t, rw.Writer().Acquire(ctx), "the writer gets in once the reader is gone")
	assert.Positive(t, rw.Writer().Token())
	require.NoError(t, rw.Writer().Release(ctx))
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val())
}

// A reader whose process died frees its share when its lease ends on the
// server; a writer waiting for it gets in then.
func TestRWLockDeadReaderFrees(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	dead := newRWLock(t, c, name, redislock.WithTTL(300*time.Millisecond), redislock.WithoutHeartbeat())
	require.NoError(t, dead.Reader().Acquire(ctx))
	w := newRWLock(t, c, name, redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	start := time.Now()
	require.NoError(t, w.Writer().Acquire(ctx))
	assert.Less(t, time.Since(start), 2*time.Second, "the writer's sleep was capped by the reader's lease")
	closedWithin(t, dead.Reader().Lost(), time.Second)
	require.NoError(t, w.Writer().Release(ctx))
}

// The write lock's release wakes every waiting reader.
func TestRWLockWriterReleaseWakesReaders(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	w := newRWLock(t, c, name)
	require.NoError(t, w.Writer().Acquire(ctx))
	slow := redislock.WithRetryBackoff(5*time.Second, 5*time.Second)
	const n = 4
	got := make(chan *redislock.Lock, n)
	for range n {
		r := newRWLock(t, c, name, slow)
		go func() {
			if assert.NoError(t, r.Reader().Acquire(ctx)) {
				got <- r.Reader()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	require.NoError(t, w.Writer().Release(ctx))
	var held []*redislock.Lock
	for range n {
		select {
		case r := <-got:
			held = append(held, r)
		case <-time.After(3 * time.Second):
			t.Fatal("a reader was not woken by the writer's release")
		}
	}
	assert.Less(t, time.Since(start), 2*time.Second)
	for _, r := range held {
		assert.True(t, r.Held(), "readers hold together")
	}
	for _, r := range held {
		require.NoError(t, r.Release(ctx))
	}
}

// A writer whose process died while it waited stops keeping readers out
// once its mark expires (one that gives up takes its mark back at once:
// TestRegressionRWLockCancelledWriterKeepsReadersOut).
func TestRWLockDeadWritersMarkExpires(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	reader := newRWLock(t, c, "dead-writer")
	require.NoError(t, reader.Reader().Acquire(ctx))
	wc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	writer := newRWLock(t, wc, "dead-writer", redislock.WithRetryBackoff(10*time.Millisecond, 100*time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- writer.Writer().Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool {
		return c.ZCount(ctx, "lock:dead-writer", "(2251799813685248", "+inf").Val() == 1
	}, "the waiting writer marked the lock")
	require.NoError(t, wc.Close()) // the writer's process is gone: nothing takes the mark back
	assert.Error(t, <-done)

	late := newRWLock(t, c, "dead-writer")
	ok, err := late.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "the dead writer's mark keeps new readers out")
	eventually(t, 2*time.Second, func() bool {
		ok, err := late.Reader().TryAcquire(ctx)
		require.NoError(t, err)
		return ok
	}, "readers get in once the mark expired")
	require.NoError(t, late.Reader().Release(ctx))
	require.NoError(t, reader.Reader().Release(ctx))
}

// Inside the writer's critical section, the owner's reader takes a read
// hold of its own (a downgrade through the context), not a level of the
// write hold; a semaphore Lock with a permit of its own re-enters it rather
// than borrowing another's through the context.
func TestPrimitivesDoNotBorrowAcrossKindsOrOverOwnHolds(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	rw := newRWLock(t, c, name)
	require.NoError(t, rw.Writer().WithLock(ctx, func(ctx context.Context) error {
		require.NoError(t, rw.Reader().Acquire(ctx))
		assert.Equal(t, 1, rw.Writer().Count(), "the read level is not a level of the write hold")
		return nil
	}))
	other := newRWLock(t, c, name)
	ok, err := other.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "after the downgrade the write hold is gone and readers share")
	require.NoError(t, other.Reader().Release(ctx))
	require.NoError(t, rw.Reader().Release(ctx))
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val())

	sname := redistest.Key(t)
	a := newSemaphore(t, c, sname, 2)
	b := newSemaphore(t, c, sname, 2)
	require.NoError(t, b.Acquire(ctx))
	require.NoError(t, a.WithLock(ctx, func(ctx context.Context) error {
		require.NoError(t, b.Acquire(ctx))
		assert.Equal(t, 2, b.Count(), "b re-entered its own permit")
		assert.Equal(t, 1, a.Count())
		require.NoError(t, b.Release(ctx))
		assert.True(t, b.Held())
		return nil
	}))
	require.NoError(t, b.Release(ctx))
	assert.False(t, b.Held())
	n, err := redislock.SemaphoreHolders(ctx, c, sname)
	require.NoError(t, err)
	assert.Zero(t, n)
}
