package redislock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// The Observer doc promises events are delivered "never with a lock of this
// package held". A release's event is delivered while the Lock's op slot (its
// per-Lock request lock) is still taken, so an Observe that calls back into
// the same Lock blocks until its own context gives up.
func TestRegressionObserveReleaseHoldsOpSlot(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var l *redislock.Lock
	var once sync.Once
	callback := make(chan error, 1)
	obs := redislock.ObserverFunc(func(e redislock.Event) {
		if e.Kind != redislock.EventRelease {
			return
		}
		once.Do(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := l.TryAcquire(cctx)
			callback <- err
		})
	})
	l = newLock(t, srv.Client(t), "obs-op", redislock.WithObserver(obs))
	require.NoError(t, l.Acquire(ctx))
	start := time.Now()
	require.NoError(t, l.Release(ctx))
	err := <-callback
	took := time.Since(start)
	if l.Held() {
		_ = l.Release(ctx)
	}
	require.NoError(t, err, "TryAcquire called from Observe(EventRelease) could not run: the Lock's op slot was held (took %v)", took)
	require.False(t, errors.Is(err, context.DeadlineExceeded))
}

// Same promise, for the loss found by a re-entry: Acquire's re-entry attempt
// reports EventLoss from inside the request with the op slot taken.
func TestRegressionObserveLossFromReentryHoldsOpSlot(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var l *redislock.Lock
	var once sync.Once
	callback := make(chan error, 1)
	obs := redislock.ObserverFunc(func(e redislock.Event) {
		if e.Kind != redislock.EventLoss {
			return
		}
		once.Do(func() {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := l.TryAcquire(cctx)
			callback <- err
		})
	})
	l = newLock(t, srv.Client(t), "obs-loss", redislock.WithObserver(obs), redislock.WithoutHeartbeat())
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, srv.Client(t).Del(ctx, l.Key()).Err())
	_ = l.Acquire(ctx) // the re-entry finds the key gone: a loss
	var err error
	select {
	case err = <-callback:
	case <-time.After(5 * time.Second):
		t.Fatal("no EventLoss")
	}
	if l.Held() {
		_ = l.Release(ctx)
	}
	require.NoError(t, err, "TryAcquire called from Observe(EventLoss) could not run: the Lock's op slot was held")
}

// WithFair promises "A waiter that gives up leaves the queue at once". When
// Acquire's first attempt on a fair lock is queued by the server but its
// reply comes after the caller's deadline, Acquire returns without leaving
// the queue (acquire.go: the first attempt returns before waitFair, whose
// deferred leaveQueue is the only one). The departed waiter then heads the
// queue for its whole waiter lease, and nobody can take the free lock.
func TestRegressionFairFirstAttemptTimeoutStaysQueued(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	holder := newLock(t, srv.Client(t), "fair-first", redislock.WithFair())
	other := newLock(t, srv.Client(t), "fair-first", redislock.WithFair())
	proxy, wc := proxied(t, srv, func(o *redis.Options) { o.ContextTimeoutEnabled = true; o.ReadTimeout = time.Second })
	waiter := newLock(t, wc, "fair-first", redislock.WithFair(),
		redislock.WithWaitTimeout(150*time.Millisecond))
	require.NoError(t, holder.Acquire(ctx))
	// Warm up the waiter's connection and scripts without queueing it.
	ok, err := waiter.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)

	// A round trip of 200 ms: the first attempt reaches the server at
	// 100 ms and queues the waiter; its reply would come after the timeout.
	proxy.SetLatency(100 * time.Millisecond)
	err = waiter.Acquire(ctx)
	require.ErrorIs(t, err, redislock.ErrNotAcquired)
	proxy.SetLatency(0)
	queue, _ := redislock.FairQueueKeys(holder.Key())
	t.Logf("acquire error: %v; queue after it returned: %v", err, srv.Client(t).ZRange(ctx, queue, 0, -1).Val())
	require.NoError(t, holder.Release(ctx))

	// The lock is free and nobody waits: it must be takeable at once.
	start := time.Now()
	var got bool
	for time.Since(start) < 4*time.Second && !got {
		got, err = other.TryAcquire(ctx)
		require.NoError(t, err)
		if !got {
			time.Sleep(10 * time.Millisecond)
		}
	}
	took := time.Since(start)
	if got {
		require.NoError(t, other.Release(ctx))
	}
	require.Less(t, took, 500*time.Millisecond,
		"a free fair lock stayed untakeable for %v: the waiter that gave up was still queued", took)
}

// README: "Acquire stops when ctx is done or WithWaitTimeout passes, with an
// error matching both ErrNotAcquired and the context error." When the wait
// timeout passes while a request is on its way (a client with
// ContextTimeoutEnabled, as the README recommends), attempt joins
// ErrNotAcquired with the socket's i/o timeout but not with the context
// error, so errors.Is(err, context.DeadlineExceeded) is false and the
// observer reports OutcomeError instead of OutcomeTimedOut.
func TestRegressionWaitTimeoutMidRequestLacksContextError(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	holder := newLock(t, srv.Client(t), "timeout-mid")
	proxy, wc := proxied(t, srv, func(o *redis.Options) { o.ContextTimeoutEnabled = true; o.ReadTimeout = time.Second })
	outcomes := make(chan redislock.Outcome, 4)
	obs := redislock.ObserverFunc(func(e redislock.Event) {
		if e.Kind == redislock.EventAcquire {
			outcomes <- e.Outcome
		}
	})
	waiter := newLock(t, wc, "timeout-mid", redislock.WithWaitTimeout(150*time.Millisecond), redislock.WithObserver(obs))
	require.NoError(t, holder.Acquire(ctx))
	defer func() { require.NoError(t, holder.Release(ctx)) }()
	ok, err := waiter.TryAcquire(ctx) // warm up connection and scripts
	require.NoError(t, err)
	require.False(t, ok)
	<-outcomes

	proxy.SetLatency(100 * time.Millisecond)
	err = waiter.Acquire(ctx)
	proxy.SetLatency(0)
	require.ErrorIs(t, err, redislock.ErrNotAcquired)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the wait timeout passed; got %v", err)
	require.Equal(t, redislock.OutcomeTimedOut, <-outcomes)
}

// WithFair: "waiters from every process are served in the order they first
// asked". A holder whose hold ended at its validity deadline while its key
// still lives on the server (the last 1 % of the lease) asks again and gets
// the lock at once, ahead of the queue's head, which asked long before: the
// acquire script's "stale" branch replaces the owner's own key whatever the
// queue says, instead of letting the head have the lock.
func TestRegressionFairLostHolderJumpsQueue(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	holder := newLock(t, srv.Client(t), "fair-stale", redislock.WithFair(),
		redislock.WithTTL(5*time.Second), redislock.WithoutHeartbeat())
	waiter := newLock(t, srv.Client(t), "fair-stale", redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx))
	got := make(chan error, 1)
	go func() { got <- waiter.Acquire(ctx) }()
	queue, _ := redislock.FairQueueKeys(holder.Key())
	eventually(t, 2*time.Second, func() bool { return srv.Client(t).ZCard(ctx, queue).Val() == 1 }, "waiter queued")

	<-holder.Lost() // at the validity deadline, ~52 ms before the key expires
	ok, err := holder.TryAcquire(ctx)
	require.NoError(t, err)
	pttl := srv.Client(t).PTTL(ctx, holder.Key()).Val()
	if ok {
		require.NoError(t, holder.Release(ctx))
	}
	require.NoError(t, <-got)
	require.NoError(t, waiter.Release(ctx))
	require.False(t, ok, "the lost holder took the fair lock again ahead of the queued waiter (key pttl after: %v)", pttl)
}

// README: "WithLock releases when its function panics, too." An Observer
// that panics on the acquire event makes WithLock panic after the lock was
// taken and before its release is deferred: the hold is never released and
// its heartbeat renews it for as long as the process lives, so no other
// owner can ever take the lock.
func TestRegressionWithLockObserverPanicLeaksHold(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	obs := redislock.ObserverFunc(func(e redislock.Event) {
		if e.Kind == redislock.EventAcquire {
			panic("observer bug")
		}
	})
	l := newLock(t, srv.Client(t), "obs-panic", redislock.WithObserver(obs), redislock.WithTTL(time.Second))
	other := newLock(t, srv.Client(t), "obs-panic")
	ran := false
	func() {
		defer func() { _ = recover() }()
		_ = l.WithLock(ctx, func(context.Context) error { ran = true; return nil })
	}()
	require.False(t, ran)
	defer func() {
		if l.Held() {
			_ = l.Release(ctx)
		}
	}()
	deadline := time.Now().Add(3 * time.Second) // three leases
	got := false
	for !got && time.Now().Before(deadline) {
		var err error
		got, err = other.TryAcquire(ctx)
		require.NoError(t, err)
		if !got {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if got {
		require.NoError(t, other.Release(ctx))
	}
	require.True(t, got, "after WithLock panicked (held by its Lock: %v), nobody could take the lock for three leases", l.Held())
}

// README: "The context that WithLock passes to its function carries the
// hold: code below it that locks the same name through the same client —
// even through another Lock value — re-enters instead of deadlocking." A
// fair and a plain Lock of one name share the key (the same hash; the
// README lets them coexist, only the order is lost). Under a fair Lock's
// WithLock, a plain Lock of the name does not re-enter (lenderHold requires
// the same primitive): it waits for its own caller's hold until its wait
// timeout.
func TestRegressionWithLockNestedFairPlainDeadlocks(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := srv.Client(t)
	outer := newLock(t, c, "nest-mixed", redislock.WithFair())
	inner := newLock(t, c, "nest-mixed", redislock.WithWaitTimeout(time.Second))
	var innerErr error
	require.NoError(t, outer.WithLock(ctx, func(ctx context.Context) error {
		innerErr = inner.Acquire(ctx)
		if innerErr == nil {
			return inner.Release(ctx)
		}
		return nil
	}))
	require.NoError(t, innerErr, "a plain Lock of the name under the fair Lock's WithLock waited for its own caller's hold")
}
