package redislock_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// A semaphore acquire whose reply is lost and that go-redis retries takes
// two permits for one Lock; the release gives back one, and the other
// blocks the semaphore until its lease runs out.
func TestSemaphoreRetriedAcquireLeaksPermit(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d)
	name := redistest.Key(t)
	// Load the scripts, so that the acquire below is one EVALSHA.
	warm, err := redislock.NewSemaphore(c, name+":warm", 1)
	require.NoError(t, err)
	require.NoError(t, warm.Acquire(ctx))
	require.NoError(t, warm.Release(ctx))

	a, err := redislock.NewSemaphore(c, name, 1)
	require.NoError(t, err)
	d.arm("evalsha", name)
	ok, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, d.dropped.Load(), "the acquire's reply was not dropped")
	n, err := redislock.SemaphoreHolders(ctx, c, name)
	require.NoError(t, err)
	t.Logf("TryAcquire of a free semaphore after a lost reply: %v; Count %d; SemaphoreHolders %d", ok, a.Count(), n)
	if ok {
		require.NoError(t, a.Release(ctx))
	}
	b, err := redislock.NewSemaphore(redistest.Client(t), name, 1)
	require.NoError(t, err)
	okB, err := b.TryAcquire(ctx)
	require.NoError(t, err)
	if okB {
		require.NoError(t, b.Release(ctx))
	}
	require.True(t, ok, "a retried acquire of a free semaphore must take it")
	require.Equal(t, 1, n, "one Lock took at most one permit, SemaphoreHolders says %d", n)
	require.True(t, okB, "a's attempt is over and its Lock holds nothing, yet another Lock cannot take the only permit")
}

// The same for an RWLock reader: a retried reader acquire leaves a reader
// behind that keeps writers out after the release.
func TestRWLockRetriedReaderAcquireBlocksWriter(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d)
	name := redistest.Key(t)
	warm, err := redislock.NewRWLock(c, name+":warm")
	require.NoError(t, err)
	require.NoError(t, warm.Reader().Acquire(ctx))
	require.NoError(t, warm.Reader().Release(ctx))

	rw, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	d.arm("evalsha", name)
	ok, err := rw.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.EqualValues(t, 1, d.dropped.Load(), "the acquire's reply was not dropped")
	require.NoError(t, rw.Reader().Release(ctx))

	other, err := redislock.NewRWLock(redistest.Client(t), name)
	require.NoError(t, err)
	ok, err = other.Writer().TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the only reader released, yet a writer cannot take the lock")
	require.NoError(t, other.Writer().Release(ctx))
}

// A context that still carries an ended WithLock hold (kept with
// context.WithoutCancel for work after the section) makes another Lock of
// the same name fail at once instead of acquiring the free lock.
func TestEndedLenderInContextBlocksAcquire(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	a := newLock(t, c, name)
	b := newLock(t, c, name, redislock.WithWaitTimeout(2*time.Second))
	var kept context.Context
	require.NoError(t, a.WithLock(ctx, func(fctx context.Context) error {
		kept = context.WithoutCancel(fctx)
		return nil
	}))
	ok, err := b.TryAcquire(kept)
	require.NoError(t, err, "TryAcquire of a free lock")
	require.True(t, ok)
	require.NoError(t, b.Release(ctx))
	require.NoError(t, b.Acquire(kept), "Acquire of a free lock")
	require.NoError(t, b.Release(ctx))
}

// A Release that times out waiting for another call in flight on the same
// Lock gives up nothing: the level stays, the heartbeat keeps the key alive,
// and the deferred Release the README calls "always safe" leaked the lock.
func TestReleaseBlockedByInFlightCallKeepsLevel(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	var armed atomic.Bool
	started := make(chan struct{})
	proxy, c := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout = 8 * time.Second })
	c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
		if armed.CompareAndSwap(true, false) {
			close(started)
		}
	}})
	l := newLock(t, c, redistest.Key(t))
	require.NoError(t, l.Acquire(ctx))

	proxy.Blackhole() // the next request hangs until its read timeout
	armed.Store(true)
	ttlDone := make(chan error, 1)
	go func() { _, err := l.TTL(ctx); ttlDone <- err }()
	<-started // TTL holds the Lock's op and is on its way
	relErr := l.Release(ctx)
	t.Logf("Release: %v", relErr)
	proxy.Heal()
	t.Logf("TTL: %v", <-ttlDone)
	require.False(t, l.Held(), "Release returned (%v), yet the Lock still holds the level: doc says the local level is given up even if the request fails", relErr)
	require.Equal(t, 0, l.Count())
}

// A writer acquire whose reply is lost and that go-redis retries finds its
// own first write, takes it for another owner's, and refuses itself; the
// write hold it left keeps everyone out for its lease.
func TestRWLockRetriedWriterAcquireBlocksItself(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d)
	name := redistest.Key(t)
	warm, err := redislock.NewRWLock(c, name+":warm")
	require.NoError(t, err)
	require.NoError(t, warm.Writer().Acquire(ctx))
	require.NoError(t, warm.Writer().Release(ctx))

	rw, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	d.arm("evalsha", name)
	ok, err := rw.Writer().TryAcquire(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, d.dropped.Load(), "the acquire's reply was not dropped")
	if ok {
		require.NoError(t, rw.Writer().Release(ctx))
	}
	other, err := redislock.NewRWLock(redistest.Client(t), name)
	require.NoError(t, err)
	okOther, err := other.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	if okOther {
		require.NoError(t, other.Reader().Release(ctx))
	}
	require.True(t, ok, "a retried writer acquire of a free RWLock must take it")
	require.True(t, okOther, "the writer's attempt is over and it holds nothing, yet a reader cannot get in")
}

// A writer that tried while a reader held leaves its waiting mark; the
// reader's last release then keeps the key, which stays for the reader's
// whole TTL: longer than ReleaseLatchTTL after the last release.
func TestRWLockWriterMarkOutlivesLastRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for ReleaseLatchTTL")
	}
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	rw1, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	rw2, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	require.NoError(t, rw1.Reader().Acquire(ctx))
	ok, err := rw2.Writer().TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, rw1.Reader().Release(ctx))
	released := time.Now()
	key := rw1.Reader().Key()
	// Give the latch its full lifetime, then a margin.
	time.Sleep(time.Until(released.Add(redislock.ReleaseLatchTTL + 500*time.Millisecond)))
	left, err := c.Keys(ctx, "*"+name+"*").Result()
	require.NoError(t, err)
	pttl := c.PTTL(ctx, key).Val()
	require.Empty(t, left, "%v after the last release, keys of the name remain (lock key PTTL %v)", time.Since(released).Round(time.Millisecond), pttl)
}

// After the last holder released and the other's permit expired, the
// semaphore has no holders, yet an acquire with another limit fails with
// ErrLimitMismatch until the released holder's longer lease runs out.
func TestSemaphoreLimitOutlivesHolders(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	short, err := redislock.NewSemaphore(c, name, 2, redislock.WithTTL(300*time.Millisecond), redislock.WithoutHeartbeat())
	require.NoError(t, err)
	long, err := redislock.NewSemaphore(c, name, 2)
	require.NoError(t, err)
	require.NoError(t, short.Acquire(ctx))
	require.NoError(t, long.Acquire(ctx))
	require.NoError(t, long.Release(ctx))
	closedWithin(t, short.Lost(), 2*time.Second)
	eventually(t, 2*time.Second, func() bool {
		n, err := redislock.SemaphoreHolders(ctx, c, name)
		return err == nil && n == 0
	}, "holders never reached 0")
	other, err := redislock.NewSemaphore(c, name, 3)
	require.NoError(t, err)
	ok, err := other.TryAcquire(ctx)
	require.NoError(t, err, "no current holders set a limit (SemaphoreHolders says 0); key PTTL %v", c.PTTL(ctx, other.Key()).Val())
	require.True(t, ok)
	require.NoError(t, other.Release(ctx))
}

// A last release whose reply is lost is retried by go-redis. If another
// owner took and released the lock in between (a waiter is woken by the
// very release), the retry finds the other owner's token in the latch and
// the Release reports a loss that never happened.
func TestRetriedReleaseAfterRivalReportsFalseLoss(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d)
	name := redistest.Key(t)
	a := newLock(t, c, name)
	rival := newLock(t, redistest.Client(t), name)
	warm := newLock(t, c, name+":warm") // loads the scripts
	require.NoError(t, warm.Acquire(ctx))
	require.NoError(t, warm.Release(ctx))
	require.NoError(t, a.Acquire(ctx))
	var rivalErr error
	d.onDrop = func() {
		ok, err := rival.TryAcquire(ctx)
		if err == nil && !ok {
			err = errors.New("rival did not get the released lock")
		}
		if err == nil {
			err = rival.Release(ctx)
		}
		rivalErr = err
	}
	d.arm("evalsha", ":released:"+a.Key())
	lost := a.Lost()
	err := a.Release(ctx)
	require.EqualValues(t, 1, d.dropped.Load(), "the release's reply was not dropped")
	require.NoError(t, rivalErr)
	require.NoError(t, err, "the release succeeded on its first run")
	select {
	case <-lost:
		t.Fatal("Lost closed for a hold that was released, not lost")
	default:
	}
}

// On a Ring each shard keeps its own fencing counter per slot tag. When a
// shard leaves the Ring, a name moves to a shard whose counter for the same
// tag started earlier, and the name's next token is smaller than the ones
// it got before: the Token doc allows that only for a lost increment or a
// lost counter with a clock set back.

// Release with a context that can never be cancelled is not bounded by
// DefaultReleaseTimeout: detach hands the context on as it is, so a client
// that follows the README (ContextTimeoutEnabled) and has no read timeout
// of its own waits for a stalled server as long as it stalls.
func TestReleaseWithBackgroundContextIsUnbounded(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	proxy, c := proxied(t, srv, func(o *redis.Options) {
		o.ContextTimeoutEnabled = true
		o.ReadTimeout = -1 // no timeout: contexts bound the I/O
	})
	l := newLock(t, c, redistest.Key(t))
	require.NoError(t, l.Acquire(ctx))
	proxy.Blackhole()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Release(ctx) }()
	bound := time.NewTimer(redislock.DefaultReleaseTimeout + time.Second)
	defer bound.Stop()
	select {
	case err := <-done:
		t.Logf("Release: %v after %v", err, time.Since(start).Round(time.Millisecond))
	case <-bound.C:
		proxy.DropConnections() // let it end
		err := <-done
		t.Fatalf("Release still waiting after %v, documented as bounded by DefaultReleaseTimeout (it returned %v once the connection was cut)",
			redislock.DefaultReleaseTimeout+time.Second, err)
	}
}

// Context re-entry does not look at the primitive: a writer given the
// context of a read hold "re-enters" that read hold. The writer then
// reports the write lock held while another reader holds the read lock,
// and the own-reader deadlock check (ErrWouldDeadlock) is bypassed.
func TestWriterReentersReadHoldThroughContext(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	rw1, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	rw2, err := redislock.NewRWLock(c, name, redislock.WithWaitTimeout(300*time.Millisecond))
	require.NoError(t, err)
	rw3, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	var ownErr, otherErr error
	var readerToo bool
	require.NoError(t, rw1.Reader().WithLock(ctx, func(ctx context.Context) error {
		ownErr = rw1.Writer().Acquire(ctx)
		if ownErr == nil {
			_ = rw1.Writer().Release(ctx)
		}
		otherErr = rw2.Writer().Acquire(ctx)
		if otherErr == nil {
			ok, err := rw3.Reader().TryAcquire(context.Background())
			require.NoError(t, err)
			readerToo = ok
			if ok {
				require.NoError(t, rw3.Reader().Release(ctx))
			}
			_ = rw2.Writer().Release(ctx)
		}
		return nil
	}))
	assert.ErrorIs(t, ownErr, redislock.ErrWouldDeadlock, "the own reader holds: the writer must fail at once")
	assert.Error(t, otherErr, "another owner's reader holds: the writer must not get in")
	assert.False(t, readerToo, "writer and another reader held at once")
}

// The same for semaphores: a second semaphore Lock (another owner) given
// the context of a permit "re-enters" it, so with limit 1 two owners hold
// at once, and a Lock with another limit is not refused.
func TestSemaphoreOwnerBorrowsAnotherOwnersPermit(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	s1, err := redislock.NewSemaphore(c, name, 1)
	require.NoError(t, err)
	s2, err := redislock.NewSemaphore(c, name, 1)
	require.NoError(t, err)
	s5, err := redislock.NewSemaphore(c, name, 5)
	require.NoError(t, err)
	var ok2 bool
	var err5 error
	require.NoError(t, s1.WithLock(ctx, func(ctx context.Context) error {
		var err error
		ok2, err = s2.TryAcquire(ctx)
		require.NoError(t, err)
		if ok2 {
			require.True(t, s1.Held() && s2.Held())
			n, err := redislock.SemaphoreHolders(ctx, c, name)
			require.NoError(t, err)
			require.Equal(t, 1, n, "one permit, lent")
			require.NoError(t, s2.Release(ctx))
		}
		_, err5 = s5.TryAcquire(ctx)
		if err5 == nil && s5.Held() {
			require.NoError(t, s5.Release(ctx))
		}
		return nil
	}))
	// Through s1's WithLock context, s2 (same primitive, same limit)
	// re-enters s1's permit, as a mutex Lock re-enters a lender's hold: one
	// permit is in use, not two.
	assert.True(t, ok2, "s2 re-entered s1's permit through the context")
	assert.ErrorIs(t, err5, redislock.ErrLimitMismatch, "an acquire with limit 5 of a limit-1 semaphore")
}

// An acquire that fails with a network error after the server ran it is
// given back when the owner is the Lock's own random one. An RWLock's
// Locks are made WithOwner (its owner plus ":r"/":w"), so theirs is not:
// the failed writer's hold keeps everyone out for its whole TTL.
func TestRWLockFailedAcquireNotGivenBack(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d, func(o *redis.Options) { o.MaxRetries = -1 })
	name := redistest.Key(t)
	warm, err := redislock.NewRWLock(c, name+":warm")
	require.NoError(t, err)
	require.NoError(t, warm.Writer().Acquire(ctx))
	require.NoError(t, warm.Writer().Release(ctx))

	rw, err := redislock.NewRWLock(c, name)
	require.NoError(t, err)
	d.arm("evalsha", name)
	ok, err := rw.Writer().TryAcquire(ctx)
	require.Error(t, err)
	require.False(t, ok)
	require.EqualValues(t, 1, d.dropped.Load())
	require.False(t, rw.Writer().Held())

	other, err := redislock.NewRWLock(redistest.Client(t), name)
	require.NoError(t, err)
	ok, err = other.Reader().TryAcquire(ctx)
	require.NoError(t, err)
	if ok {
		require.NoError(t, other.Reader().Release(ctx))
	}
	require.True(t, ok, "the failed writer acquire was not given back; the key's PTTL is %v", redistest.Client(t).PTTL(ctx, rw.Writer().Key()).Val())
}

// The borrowed form of the Release defect is worse: the borrower's level is
// dropped locally, the lender's count is not, and once the lender's
// WithLock returned nothing holds a handle on the level that keeps the
// lender's hold, and its key, alive.
func TestBorrowedReleaseBehindInFlightCallLeaksHold(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	var armed atomic.Bool
	started := make(chan struct{})
	proxy, c := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout = 8 * time.Second })
	c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
		if armed.CompareAndSwap(true, false) {
			close(started)
		}
	}})
	name := redistest.Key(t)
	a, b := newLock(t, c, name), newLock(t, c, name)
	var relErr error
	require.NoError(t, a.WithLock(ctx, func(ctx context.Context) error {
		if err := b.Acquire(ctx); err != nil {
			return err
		}
		proxy.Blackhole()
		armed.Store(true)
		ttlDone := make(chan error, 1)
		go func() { _, err := a.TTL(ctx); ttlDone <- err }()
		<-started
		relErr = b.Release(ctx)
		proxy.Heal()
		<-ttlDone
		return nil
	}))
	t.Logf("b.Release: %v", relErr)
	require.False(t, b.Held())
	require.False(t, a.Held(), "both levels were given up (b's Release returned), yet a still holds with Count %d", a.Count())
}
