package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// A hold lost at its validity deadline while its key is still on the server
// is given back by the Release that reports the loss.
func TestExpiredHoldGivenBackByRelease(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	proxy, c := proxied(t, srv)
	name := redistest.Key(t)
	l := newLock(t, c, name, redislock.WithTTL(2*time.Second), redislock.WithClockDrift(0.45))
	require.NoError(t, l.Acquire(ctx))
	proxy.Blackhole()
	closedWithin(t, l.Lost(), 3*time.Second)
	proxy.Heal()
	proxy.DropConnections()
	direct := srv.Client(t)
	require.EqualValues(t, 1, direct.Exists(ctx, l.Key()).Val(), "the key must still be on the server for this test")
	err := l.Release(ctx)
	require.ErrorIs(t, err, redislock.ErrLockLost)
	require.EqualValues(t, 0, direct.Exists(ctx, l.Key()).Val(), "the Release that reported the loss did not give the key back")
	_ = errors.New
}

// Borrowed levels across three Locks: a panic in the innermost section
// gives its level back, a late and a double release of a borrowed level
// touch nothing of the lender's, and Count/Held/Token agree throughout.
func TestNestedBorrowsPanicAndLateRelease(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	a, b, d := newLock(t, c, name), newLock(t, c, name), newLock(t, c, name)
	consistent := func(l *redislock.Lock) {
		t.Helper()
		if !l.Held() {
			require.Zero(t, l.Count(), "Count is 0 whenever Held is false")
			require.Zero(t, l.Token())
		} else {
			require.NotZero(t, l.Token())
		}
	}
	err := a.WithLock(ctx, func(ctx context.Context) error {
		tok := a.Token()
		return b.WithLock(ctx, func(ctx context.Context) error {
			require.Equal(t, tok, b.Token())
			require.Equal(t, 2, a.Count())
			func() {
				defer func() { require.NotNil(t, recover()) }()
				_ = d.WithLock(ctx, func(ctx context.Context) error {
					require.Equal(t, 3, a.Count())
					require.Equal(t, 1, d.Count())
					panic("boom")
				})
			}()
			consistent(d)
			require.False(t, d.Held())
			require.Equal(t, 2, a.Count())
			// A double release through b: the second has nothing left.
			require.NoError(t, b.Acquire(ctx))
			require.NoError(t, b.Release(ctx))
			consistent(b)
			require.Equal(t, 1, b.Count())
			return nil
		})
	})
	require.NoError(t, err)
	for _, l := range []*redislock.Lock{a, b, d} {
		consistent(l)
		require.False(t, l.Held())
	}
	require.ErrorIs(t, b.Release(ctx), redislock.ErrNotHeld)
	require.EqualValues(t, 0, c.Exists(ctx, a.Key()).Val())

	// A late release of a borrowed level after the lender took a new hold.
	require.NoError(t, a.Acquire(ctx))
	fctxCh := make(chan struct{})
	require.NoError(t, a.WithLock(ctx, func(ctx context.Context) error {
		close(fctxCh)
		return b.Acquire(ctx) // never released inside
	}))
	<-fctxCh
	require.Equal(t, 2, a.Count())
	require.NoError(t, a.Release(ctx))
	require.NoError(t, a.Release(ctx)) // gives back b's level too
	consistent(b)
	require.NoError(t, a.Acquire(ctx))
	tok := a.Token()
	require.ErrorIs(t, b.Release(ctx), redislock.ErrNotHeld)
	require.True(t, a.Held())
	require.Equal(t, 1, a.Count())
	require.Equal(t, tok, a.Token())
	ttl, err := a.TTL(ctx)
	require.NoError(t, err)
	require.Positive(t, ttl)
	require.NoError(t, a.Release(ctx))
}

// Lost replies that go-redis retries on a mutex: a fresh acquire, a
// re-entry, an earlier and a last release. None double-counts or reports
// a loss, and the key is gone after the last release.
func TestMutexRetriedRequests(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d)
	name := redistest.Key(t)
	warm := newLock(t, c, name+":warm")
	require.NoError(t, warm.Acquire(ctx))
	require.NoError(t, warm.Acquire(ctx))
	require.NoError(t, warm.Release(ctx))
	require.NoError(t, warm.Release(ctx))

	l := newLock(t, c, name)
	lost := l.Lost()
	d.arm("evalsha", l.Key(), "fence")
	require.NoError(t, l.Acquire(ctx))
	lost = l.Lost()
	stored, err := c.HGet(ctx, l.Key(), "token").Int64()
	require.NoError(t, err)
	require.Equal(t, stored, l.Token())
	d.arm("evalsha", l.Key(), "fence")
	require.NoError(t, l.Acquire(ctx))
	d.arm("evalsha", ":released:"+l.Key())
	require.NoError(t, l.Release(ctx))
	require.True(t, l.Held())
	d.arm("evalsha", ":released:"+l.Key())
	require.NoError(t, l.Release(ctx))
	require.EqualValues(t, 4, d.dropped.Load())
	require.False(t, l.Held())
	require.EqualValues(t, 0, c.Exists(ctx, l.Key()).Val())
	select {
	case <-lost:
		t.Fatal("a loss was reported")
	default:
	}
}

// Many names taken and released: after ReleaseLatchTTL only the slots'
// fencing counters remain in the database.
func TestChurnLeavesOnlyFenceCounters(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for ReleaseLatchTTL")
	}
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)
	for i := 0; i < 300; i++ {
		l := newLock(t, c, fmt.Sprintf("churn:%d", i))
		require.NoError(t, l.Acquire(ctx))
		require.NoError(t, l.Acquire(ctx))
		require.NoError(t, l.Release(ctx))
		require.NoError(t, l.Release(ctx))
	}
	released := time.Now()
	time.Sleep(time.Until(released.Add(redislock.ReleaseLatchTTL + 500*time.Millisecond)))
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		require.True(t, strings.HasSuffix(k, "}:fence"), "left after the latch TTL: %q", k)
	}
	_ = errors.New
}

// A mutex acquire that fails with a network error after the server ran it
// is given back at once.
func TestMutexFailedAcquireGivenBack(t *testing.T) {
	ctx := context.Background()
	d := &replyDropper{}
	c := droppingClient(t, redistest.Addr(t), d, func(o *redis.Options) { o.MaxRetries = -1 })
	name := redistest.Key(t)
	warm := newLock(t, c, name+":warm")
	require.NoError(t, warm.Acquire(ctx))
	require.NoError(t, warm.Release(ctx))
	l := newLock(t, c, name)
	d.arm("evalsha", l.Key(), "fence")
	ok, err := l.TryAcquire(ctx)
	require.Error(t, err)
	require.False(t, ok)
	require.EqualValues(t, 1, d.dropped.Load())
	require.EqualValues(t, 0, c.Exists(ctx, l.Key()).Val())
	rival := newLock(t, c, name)
	ok, err = rival.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, rival.Release(ctx))
}

// A Lock shared by goroutines, lending levels through WithLock to another
// Lock, under -race: no deadlock, no race, and once every goroutine has
// given back what it took, nothing is held and the key is gone.
func TestSharedLockBorrowStress(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	a := newLock(t, c, name)
	b := newLock(t, c, name)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				err := a.WithLock(ctx, func(ctx context.Context) error {
					if err := b.WithLock(ctx, func(ctx context.Context) error {
						_ = b.Count()
						_ = b.Token()
						_, err := b.TTL(ctx)
						return err
					}); err != nil {
						return err
					}
					if err := b.Acquire(ctx); err != nil {
						return err
					}
					_ = a.Extend(ctx, 0)
					return b.Release(ctx)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("deadlock: goroutines did not finish in 60s")
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.False(t, a.Held())
	require.Zero(t, a.Count())
	require.False(t, b.Held())
	require.Zero(t, b.Count())
	require.EqualValues(t, 0, c.Exists(ctx, a.Key()).Val())
}

// A waiter whose client is closed under it returns an error, and every
// goroutine the package started for that client (notifier reader, sweep,
// heartbeat round) ends.
func TestClosedClientWhileWaitingLeaksNothing(t *testing.T) {
	ctx := context.Background()
	addr := redistest.Addr(t) // starts the shared server first
	before := goleak.IgnoreCurrent()
	holderClient := redistest.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, holderClient, name)
	require.NoError(t, holder.Acquire(ctx))
	c := redis.NewClient(&redis.Options{Addr: addr})
	waiter := newLock(t, c, name, redislock.WithWaitTimeout(10*time.Second))
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool {
		chs, _ := holderClient.PubSubChannels(ctx, "*"+name).Result()
		return len(chs) == 1
	}, "waiter never subscribed")
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not return after its client was closed")
	}
	require.NoError(t, holder.Release(ctx))
	var err error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err = goleak.Find(before, goleak.IgnoreTopFunction("time.Sleep")); err == nil {
			break
		}
	}
	require.NoError(t, err)
}

// A waiter whose pub/sub connection the server kills still learns of the
// next release within about a round trip once go-redis resubscribed, and a
// later waiter of the same name does too.
func TestKilledPubSubWaiterWokenPromptly(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	admin := srv.Client(t)
	name := redistest.Key(t)
	c := srv.Client(t)
	holder := newLock(t, srv.Client(t), name, redislock.WithTTL(20*time.Second))
	for round := 0; round < 3; round++ {
		require.NoError(t, holder.Acquire(ctx))
		waiter := newLock(t, c, name, redislock.WithRetryBackoff(5*time.Second, 5*time.Second), redislock.WithWaitTimeout(15*time.Second))
		done := make(chan time.Time, 1)
		errc := make(chan error, 1)
		go func() { err := waiter.Acquire(ctx); done <- time.Now(); errc <- err }()
		eventually(t, 3*time.Second, func() bool {
			chs, _ := admin.PubSubChannels(ctx, "*"+name).Result()
			return len(chs) == 1
		}, "waiter never subscribed")
		require.NoError(t, admin.Do(ctx, "client", "kill", "type", "pubsub").Err())
		eventually(t, 3*time.Second, func() bool {
			chs, _ := admin.PubSubChannels(ctx, "*"+name).Result()
			return len(chs) == 1
		}, "never resubscribed")
		rel := time.Now()
		require.NoError(t, holder.Release(ctx))
		at := <-done
		require.NoError(t, <-errc)
		require.Less(t, at.Sub(rel), time.Second, "round %d: the waiter took %v after the release", round, at.Sub(rel))
		require.NoError(t, waiter.Release(ctx))
	}
}
