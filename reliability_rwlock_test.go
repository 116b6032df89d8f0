package redislock_test

import (
	"context"
	"fmt"
	"net"
	"os"
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

// Scenario R1: no faults, RW lock. Goroutines in several processes read
// and write a few RW locks, now and then downgrading; in each section a
// server-side counter checks that a writer is alone and a reader is with
// readers only.
func TestReliabilityRWLockNoFaults(t *testing.T) {
	runSharedNoFaults(t, "rwlock", 0)
}

// Scenario R2: a reader or a writer is cut off from Redis by a partition
// while a writer or a reader waits; the holder must be told first.
func TestReliabilityRWLockPartitioned(t *testing.T) {
	runSharedPartitioned(t, "R2 rwlock holder partitioned", rwCases)
}

// Scenario R3: the server is stopped (SIGSTOP) past the TTL while readers
// and writers hold and others wait.
func TestReliabilityRWLockServerStopped(t *testing.T) {
	runSharedStopped(t, "R3 rwlock server stopped", rwCases)
}

// Scenario R4: restart without persistence, with readers and writers
// holding.
func TestReliabilityRWLockServerRestart(t *testing.T) {
	runSharedRestart(t, "R4 rwlock restart without persistence", rwCases)
}

// Scenario R5: SCRIPT FLUSH under load, readers and writers.
func TestReliabilityRWLockScriptFlush(t *testing.T) {
	runSharedFlush(t, "R5 rwlock SCRIPT FLUSH under load", "rwlock", 0, rwCases)
}

// Scenario R6: a writer among readers that never stop coming, from several
// clients, overlapping each other so that the lock is never free of
// readers by itself. The writer's mark must get it in, every time, within a
// bound.
func TestReliabilityRWLockWriterNotStarved(t *testing.T) {
	srv := redistest.Start(t)
	accountFor(t, srv)
	start := time.Now()
	ctx := context.Background()
	name := redistest.Key(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	for g := range 6 {
		c := srv.Client(t)
		wg.Go(func() {
			r := newRWLock(t, c, name).Reader()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				err := r.WithLock(ctx, func(context.Context) error {
					reads.Add(1)
					time.Sleep(time.Duration(5+g) * time.Millisecond)
					return nil
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		})
	}
	wc := srv.Client(t)
	w := newRWLock(t, wc, name).Writer()
	var waits []time.Duration
	for range sized(5, 30) {
		time.Sleep(50 * time.Millisecond)
		eventually(t, time.Second, func() bool { return wc.Exists(ctx, w.Key()).Val() == 1 }, "readers hold")
		t0 := time.Now()
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := w.Acquire(actx)
		cancel()
		waits = append(waits, time.Since(t0))
		if !assert.NoError(t, err, "the writer starved") {
			break
		}
		require.NoError(t, w.Release(ctx))
	}
	close(stop)
	wg.Wait()
	assert.Less(t, maxDur(waits...), 3*time.Second, "the writer waited too long among readers")
	report(t, figures{Scenario: "R6 writer among readers", Trials: len(waits), Sections: reads.Load(), Elapsed: time.Since(start),
		Notes: fmt.Sprintf("reader_goroutines=6 max_writer_wait=%v waits=%s", maxDur(waits...).Round(time.Millisecond), durs(waits))})
}

// The tests named TestRegression* below fail on purpose: each shows a broken
// promise of the RW lock or the semaphore, described in its comment.

// A writer's TryAcquire never waits, yet when it fails it leaves the
// waiting writer's mark, which keeps every new reader out of the lock for
// 2×retry max + 100 ms (600 ms by default), even once the lock is free and
// nobody waits for it.
func TestRegressionRWLockFailedWriterTryKeepsReadersOut(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	first := newRWLock(t, c, name)
	require.NoError(t, first.Reader().Acquire(ctx))
	ok, err := newRWLock(t, c, name).Writer().TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok, "the reader holds")
	require.NoError(t, first.Reader().Release(ctx))

	late := newRWLock(t, c, name).Reader()
	ok, err = late.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "a free lock that nobody waits for refused a reader")
	if ok {
		require.NoError(t, late.Release(ctx))
	}
}

// A writer that gives up waiting leaves its mark: readers stay out of a free
// lock for 2×retry max + 100 ms after the writer left. STYLE: a cancelled
// wait undoes its partial state.
func TestRegressionRWLockCancelledWriterKeepsReadersOut(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	first := newRWLock(t, c, name)
	require.NoError(t, first.Reader().Acquire(ctx))
	writer := newRWLock(t, c, name, redislock.WithRetryBackoff(2*time.Millisecond, 2*time.Second),
		redislock.WithWaitTimeout(200*time.Millisecond))
	err := writer.Writer().Acquire(ctx)
	require.ErrorIs(t, err, redislock.ErrNotAcquired)
	require.NoError(t, first.Reader().Release(ctx))

	late := newRWLock(t, c, name, redislock.WithWaitTimeout(time.Second)).Reader()
	start := time.Now()
	err = late.Acquire(ctx)
	assert.NoError(t, err, "a reader waited %v for a free lock whose writer had given up", time.Since(start))
	if err == nil {
		require.NoError(t, late.Release(ctx))
	}
}

// Readers and writers of one client share one local wait queue, and only
// its head tries. A reader at the head refused by the mark of the writer
// queued behind it keeps retrying, and the writer never tries: the lock
// stays free, with both waiting, until the mark expires.
func TestRegressionRWLockWriterQueuedBehindReader(t *testing.T) {
	srv := redistest.Start(t)
	c, other := srv.Client(t), srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	w0 := newRWLock(t, other, name)
	require.NoError(t, w0.Writer().Acquire(ctx))

	r1 := newRWLock(t, c, name).Reader()
	got := make(chan string, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if assert.NoError(t, r1.Acquire(ctx)) {
			got <- "reader"
		}
	}()
	eventuallyQueued(t, srv)

	// The writer tries once (and marks), then waits, queued behind r1.
	w1 := newRWLock(t, c, name, redislock.WithRetryBackoff(2*time.Millisecond, time.Second)).Writer()
	ok, err := w1.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if assert.NoError(t, w1.Acquire(ctx)) {
			got <- "writer"
		}
	}()
	time.Sleep(50 * time.Millisecond) // w1 is queued
	require.NoError(t, w0.Writer().Release(ctx))
	released := time.Now()
	first := <-got
	took := time.Since(released)
	assert.Less(t, took, 500*time.Millisecond, "the lock stayed free for %v with a reader and a writer waiting (%s got in first)", took, first)
	switch first {
	case "reader":
		require.NoError(t, r1.Release(ctx))
		<-wdone
		require.NoError(t, w1.Release(ctx))
	default:
		require.NoError(t, w1.Release(ctx))
		<-done
		require.NoError(t, r1.Release(ctx))
	}
	<-done
	<-wdone
}

// A downgrade (the writer's own reader) is granted by the server at once,
// but Acquire first queues behind the waiters of its client for the name,
// and only the head of that queue tries. When a reader of another RWLock on
// the same client already waits, for this very writer, the downgrade waits
// behind it for ever: a deadlock, until the context ends.
func TestRegressionRWLockDowngradeQueuedBehindWaiter(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	rw := newRWLock(t, c, name)
	require.NoError(t, rw.Writer().Acquire(ctx))
	waiting := newRWLock(t, c, name).Reader()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- waiting.Acquire(wctx) }()
	eventuallyQueued(t, srv)

	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	err := rw.Reader().Acquire(dctx)
	assert.NoError(t, err, "the downgrade waited for a reader that waits for this writer")
	if err == nil {
		require.NoError(t, rw.Reader().Release(ctx))
	}
	require.NoError(t, rw.Writer().Release(ctx))
	cancel()
	if err := <-done; err == nil {
		require.NoError(t, waiting.Release(ctx))
	}
}

// A context from WithLock carries its hold, and an Acquire with it on any
// Lock of the same key and client re-enters that hold. A reader's hold
// lent so to a writer makes a writer of a read level: the writer "holds"
// while other readers do, and the owner's own writer skips ErrWouldDeadlock.
func TestRegressionRWLockWriterBorrowsReadHold(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	other := newRWLock(t, c, name).Reader()
	require.NoError(t, other.Acquire(ctx))
	rw := newRWLock(t, c, name)
	w := newRWLock(t, c, name, redislock.WithWaitTimeout(300*time.Millisecond)).Writer()
	err := rw.Reader().WithLock(ctx, func(ctx context.Context) error {
		err := rw.Writer().Acquire(ctx)
		assert.ErrorIs(t, err, redislock.ErrWouldDeadlock, "the owner's writer, asked for under its own read hold")
		if err == nil {
			assert.False(t, other.Held(), "a writer holds with another reader")
			_ = rw.Writer().Release(ctx)
		}
		err = w.Acquire(ctx)
		assert.ErrorIs(t, err, redislock.ErrNotAcquired, "another owner's writer, asked for with a reader's context")
		if err == nil {
			assert.False(t, other.Held(), "a writer holds with two readers")
			_ = w.Release(ctx)
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, other.Release(ctx))
}

// eventuallyQueued waits until a client of srv is subscribed to a release
// channel: a waiter is queued.
func eventuallyQueued(t *testing.T, srv *redistest.Server) {
	t.Helper()
	c := srv.Client(t)
	eventually(t, 5*time.Second, func() bool {
		chans, err := c.PubSubChannels(context.Background(), "redislock:*").Result()
		return err == nil && len(chans) > 0
	}, "a waiter subscribed")
}

// lostReplyHook makes the next command it sees, once armed, fail as if its
// reply had been lost on the way back: the server ran it.
type lostReplyHook struct{ armed atomic.Bool }

func (*lostReplyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *lostReplyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if h.armed.CompareAndSwap(true, false) {
			err = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
			cmd.SetErr(err)
		}
		return err
	}
}
func (*lostReplyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// An acquire whose reply is lost may have taken the lock. A mutex with a
// generated owner gives back whatever hold of its owner the key has; the
// RW lock's Locks never do, since NewRWLock sets their owners with
// WithOwner: an orphaned write hold nobody renews or releases keeps everyone
// out for a whole TTL.
func TestRegressionRWLockLostAcquireReplyOrphansWriter(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	hook := &lostReplyHook{}
	c.AddHook(hook)
	ctx := context.Background()

	// The mutex, for comparison: the failed acquire is given back at once.
	// Each Lock runs once first, so that the server has its scripts and the
	// armed hook meets a request the server runs.
	m := newLock(t, c, redistest.Key(t))
	require.NoError(t, m.Acquire(ctx))
	require.NoError(t, m.Release(ctx))
	hook.armed.Store(true)
	_, err := m.TryAcquire(ctx)
	require.Error(t, err)
	require.Zero(t, c.Exists(ctx, m.Key()).Val(), "the mutex gave its lost acquire back")
	require.False(t, hook.armed.Load(), "the hook failed a request")

	name := redistest.Key(t)
	w := newRWLock(t, c, name, redislock.WithTTL(5*time.Second))
	require.NoError(t, w.Writer().Acquire(ctx))
	require.NoError(t, w.Writer().Release(ctx))
	hook.armed.Store(true)
	_, err = w.Writer().TryAcquire(ctx)
	require.Error(t, err)
	assert.False(t, w.Writer().Held())
	ok, err := newRWLock(t, srv.Client(t), name).Reader().TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "an orphaned write hold, which no Lock holds, keeps readers out until its TTL ends")
}

// NewRWLock's doc: a semaphore of the same name and prefix collides with it
// with ErrWrongType. Both are sorted sets, so neither notices the other: a
// semaphore permit is granted while a writer holds.
func TestRegressionSemaphoreOnRWLockKey(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	w := newRWLock(t, c, name)
	require.NoError(t, w.Writer().Acquire(ctx))
	s := newSemaphore(t, c, name, 5)
	ok, err := s.TryAcquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWrongType, "a semaphore on the key of an RW lock (granted: %v)", ok)
	if ok {
		require.NoError(t, s.Release(ctx))
	}
	require.NoError(t, w.Writer().Release(ctx))
}
