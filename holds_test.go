package redislock_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// A level borrowed through a WithLock context belongs to the lender's hold:
// when that hold is lost while the level is still out, the borrower's late
// Release must not end the lender's next hold, and the borrower's own later
// holds must not be confused with the stale level.
func TestBorrowedLevelEndsWithItsHold(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	lender := newLock(t, c, name, redislock.WithTTL(2*time.Second), redislock.WithHeartbeat(50*time.Millisecond))
	borrower := newLock(t, c, name)
	rival := newLock(t, c, name)

	borrowed := make(chan struct{})
	releaseNow := make(chan struct{})
	lateRelease := make(chan error, 1)
	err := lender.WithLock(ctx, func(ctx context.Context) error {
		// A goroutine the critical section does not wait for.
		go func() {
			if err := borrower.Acquire(ctx); err != nil {
				lateRelease <- err
				close(borrowed)
				return
			}
			close(borrowed)
			<-releaseNow
			lateRelease <- borrower.Release(context.Background())
		}()
		<-borrowed
		require.NoError(t, c.Del(ctx, lender.Key()).Err()) // the hold is lost at the next renewal
		<-ctx.Done()
		return ctx.Err()
	})
	require.ErrorIs(t, err, redislock.ErrLockLost)
	assert.False(t, borrower.Held(), "the borrowed level ended with its hold")
	assert.Zero(t, borrower.Count(), "Count is 0 whenever Held is false")
	assert.Zero(t, borrower.Token())

	// (b) The borrower's own hold, taken while the stale level is still out.
	require.NoError(t, borrower.WithLock(ctx, func(ctx context.Context) error {
		assert.NoError(t, ctx.Err(), "the borrower's own critical section starts with a live context")
		assert.Equal(t, borrower.Owner(), c.HGet(ctx, borrower.Key(), "owner").Val())
		assert.Equal(t, 1, borrower.Count())
		return nil
	}))
	assert.Zero(t, c.Exists(ctx, borrower.Key()).Val(), "the borrower's own level was released, not the stale one")

	// (a) The lender holds again; the late release of the stale level must
	// not touch that new hold.
	require.NoError(t, lender.Acquire(ctx))
	lost := lender.Lost()
	close(releaseNow)
	err = <-lateRelease
	assert.ErrorIs(t, err, redislock.ErrNotHeld)
	assert.ErrorIs(t, err, redislock.ErrLockLost, "the error says why the level's hold ended")
	assert.True(t, lender.Held())
	assert.Equal(t, lender.Owner(), c.HGet(ctx, lender.Key(), "owner").Val(), "the lender's new hold is still on the key")
	ok, err := rival.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "no rival gets in while the lender holds")
	select {
	case <-lost:
		t.Fatal("the lender's new hold was reported lost")
	default:
	}
	require.NoError(t, lender.Release(ctx))
	assert.Zero(t, c.Exists(ctx, lender.Key()).Val())
}

// A borrowed level's Extend and TTL act on the lender's hold, with the
// lender's TTL as the default.
func TestBorrowedExtendUsesLenderTTL(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	lender := newLock(t, c, name, redislock.WithTTL(2*time.Second))
	borrower := newLock(t, c, name, redislock.WithTTL(time.Hour))
	require.NoError(t, lender.WithLock(ctx, func(ctx context.Context) error {
		require.NoError(t, borrower.Acquire(ctx))
		require.NoError(t, borrower.Extend(ctx, 0))
		ttl, err := borrower.TTL(ctx)
		require.NoError(t, err)
		assert.LessOrEqual(t, ttl, 2*time.Second, "Extend(ctx, 0) on a borrowed level uses the lender's TTL")
		assert.LessOrEqual(t, c.PTTL(ctx, lender.Key()).Val(), 2*time.Second)
		return borrower.Release(ctx)
	}))
}

// A hold lost at its local deadline while its renewals ran on Redis (their
// replies came too late) is given back by the Release that reports it, and
// a fresh acquisition by the same Lock never inherits its key or token.
func TestLostHoldIsGivenBackAndNotInherited(t *testing.T) {
	for _, next := range []string{"release", "acquire"} {
		t.Run(next, func(t *testing.T) {
			srv := redistest.Start(t)
			direct := srv.Client(t)
			proxy, pc := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout = 10 * time.Second })
			ctx := context.Background()
			l := newLock(t, pc, "stale", redislock.WithTTL(3*time.Second), redislock.WithHeartbeat(300*time.Millisecond))
			require.NoError(t, l.Acquire(ctx))
			first := l.Token()
			// Requests reach Redis after 2 s and answers come back 2 s later:
			// the first renewal keeps the key alive on the server until 5.3 s,
			// but the holder hears of it only after its validity deadline
			// (2.97 s).
			proxy.SetLatency(2 * time.Second)
			closedWithin(t, l.Lost(), 5*time.Second)
			assert.Equal(t, l.Owner(), direct.HGet(ctx, l.Key(), "owner").Val(), "the key is still the holder's on the server")
			proxy.SetLatency(0)
			proxy.DropConnections() // discard the answers still on their way

			switch next {
			case "release":
				err := l.Release(ctx)
				assert.ErrorIs(t, err, redislock.ErrNotHeld)
				assert.ErrorIs(t, err, redislock.ErrLockLost)
				assert.Zero(t, direct.Exists(ctx, l.Key()).Val(), "the lost hold was given back")
			case "acquire":
				require.NoError(t, l.Acquire(ctx))
				assert.Greater(t, l.Token(), first, "a fresh acquisition gets a new token")
				assert.Equal(t, 1, l.Count())
				assert.Equal(t, "1", direct.HGet(ctx, l.Key(), "count").Val(), "a fresh hold, not a re-entry of the lost one")
				require.NoError(t, l.Release(ctx))
				assert.Zero(t, direct.Exists(ctx, l.Key()).Val())
			}
		})
	}
}

// Waiting for another goroutine's request on the same Lock respects the
// caller's context.
func TestSharedLockCallsRespectContext(t *testing.T) {
	srv := redistest.Start(t)
	proxy, pc := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout = 10 * time.Second })
	ctx := context.Background()
	l := newLock(t, pc, "shared", redislock.WithTTL(10*time.Second))
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Acquire(ctx))
	proxy.SetLatency(700 * time.Millisecond) // a release takes 1.4 s
	released := make(chan error, 1)
	go func() { released <- l.Release(ctx) }()
	eventually(t, time.Second, func() bool { return l.Count() == 1 }, "release in flight")

	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	ok, err := l.TryAcquire(tctx)
	took := time.Since(start)
	assert.False(t, ok)
	assert.ErrorIs(t, err, redislock.ErrNotAcquired)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, took, 700*time.Millisecond, "TryAcquire waited for the other request instead of its context")
	require.NoError(t, <-released)
	proxy.SetLatency(0)
	require.NoError(t, l.Release(ctx))
}

// A heartbeat interval that leaves no time to retry a renewal is refused,
// and the longest one accepted keeps a hold on an idle loopback Redis.
func TestHeartbeatMustLeaveTimeToRenew(t *testing.T) {
	c := redistest.Client(t)
	for _, tc := range []struct {
		ttl, heartbeat time.Duration
		want           string
	}{
		{time.Second, 987 * time.Millisecond, "must be at most 494ms"},
		{200 * time.Millisecond, 195 * time.Millisecond, "must be at most 98ms"},
		{200 * time.Millisecond, 99 * time.Millisecond, "must be at most 98ms"},
	} {
		_, err := redislock.New(c, "n", redislock.WithTTL(tc.ttl), redislock.WithHeartbeat(tc.heartbeat))
		require.ErrorIs(t, err, redislock.ErrInvalidArgument, "TTL %v, heartbeat %v", tc.ttl, tc.heartbeat)
		assert.Contains(t, err.Error(), tc.want)
	}
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(200*time.Millisecond), redislock.WithHeartbeat(98*time.Millisecond))
	require.NoError(t, l.Acquire(context.Background()))
	lost := l.Lost()
	timer := time.NewTimer(time.Second) // five TTLs
	defer timer.Stop()
	select {
	case <-lost:
		t.Fatal("a hold with the longest accepted heartbeat was lost on an idle server")
	case <-timer.C:
	}
	assert.True(t, l.Held())
	require.NoError(t, l.Release(context.Background()))
}

// A fencing counter of the wrong type fails the acquire before anything
// changes, with an error that names the counter.
func TestWrongTypeFenceCounter(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	l := newLock(t, c, "fenced")
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
	counters := fenceKeys(t, c)
	require.Len(t, counters, 1)
	require.NoError(t, c.Del(ctx, counters[0]).Err())
	require.NoError(t, c.HSet(ctx, counters[0], "x", "y").Err())

	err := l.Acquire(ctx)
	require.ErrorIs(t, err, redislock.ErrWrongType)
	assert.Contains(t, err.Error(), counters[0], "the error names the key that is wrong")
	assert.Zero(t, c.Exists(ctx, l.Key()).Val(), "the failed acquire left no lock key")
	assert.False(t, l.Held())

	// A counter that is a string but not an integer, likewise.
	require.NoError(t, c.Set(ctx, counters[0], "many", 0).Err())
	_, err = l.TryAcquire(ctx)
	require.ErrorIs(t, err, redislock.ErrWrongType)
	assert.Zero(t, c.Exists(ctx, l.Key()).Val())
}

// A release latch of the wrong type changes nothing for the release: the
// key is deleted and waiters hear of it.
func TestWrongTypeLatchDoesNotBreakRelease(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	l := newLock(t, c, "latched")
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
	latches, err := c.Keys(ctx, "redislock:{*}:released:"+l.Key()+":*").Result()
	require.NoError(t, err)
	require.Len(t, latches, 1)
	require.NoError(t, c.Del(ctx, latches[0]).Err())
	require.NoError(t, c.HSet(ctx, latches[0], "x", "y").Err())

	require.NoError(t, l.Acquire(ctx))
	waiter := newLock(t, c, "latched", redislock.WithRetryBackoff(5*time.Second, 5*time.Second))
	got := make(chan error, 1)
	go func() { got <- waiter.Acquire(ctx) }()
	time.Sleep(100 * time.Millisecond) // the waiter's first try fails and it sleeps
	start := time.Now()
	require.NoError(t, l.Release(ctx))
	require.NoError(t, <-got)
	assert.Less(t, time.Since(start), 2*time.Second, "the waiter was woken by the release")
	require.NoError(t, waiter.Release(ctx))
}

// Code tested on miniredis sees the same typed errors as on Redis.
func TestWrongTypeOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	l := newLock(t, c, "mini")
	require.NoError(t, c.Set(ctx, l.Key(), "not a lock", 0).Err())
	err := l.Acquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrWrongType)
	ok, err := l.TryAcquire(ctx)
	assert.False(t, ok)
	assert.ErrorIs(t, err, redislock.ErrWrongType)

	require.NoError(t, c.Del(ctx, l.Key()).Err())
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, c.HSet(ctx, l.Key(), "count", "many").Err())
	assert.ErrorIs(t, l.Acquire(ctx), redislock.ErrWrongType, "a corrupt count on re-entry")
	require.NoError(t, l.Release(ctx))
}

// The cause of a WithLock context after a loss matches ErrLockLost with
// errors.Is, as the docs say; it is not the sentinel itself.
func TestLossCauseMatchesWithErrorsIs(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(2*time.Second), redislock.WithHeartbeat(50*time.Millisecond))
	var cause error
	err := l.WithLock(ctx, func(ctx context.Context) error {
		require.NoError(t, c.Del(ctx, l.Key()).Err())
		<-ctx.Done()
		cause = context.Cause(ctx)
		return nil
	})
	assert.ErrorIs(t, err, redislock.ErrLockLost)
	assert.ErrorIs(t, cause, redislock.ErrLockLost)
	assert.NotEqual(t, redislock.ErrLockLost, cause, "the cause wraps the sentinel and says why")
}

// A client whose first acquire requests are answered TRYAGAIN, as a cluster
// node answers while a slot migrates, gets the lock once they succeed.
func TestAcquireRetriesTryAgain(t *testing.T) {
	c := redistest.Client(t)
	var refused atomic.Int32
	c.AddHook(tryAgainHook{left: &refused})
	refused.Store(3)
	l := newLock(t, c, redistest.Key(t))
	require.NoError(t, l.Acquire(context.Background()))
	assert.LessOrEqual(t, refused.Load(), int32(0), "every TRYAGAIN was tried again")
	require.NoError(t, l.Release(context.Background()))
}

type tryAgainHook struct{ left *atomic.Int32 }

// replyError is an error reply from a server, as go-redis types them.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func (tryAgainHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h tryAgainHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "evalsha") && h.left.Add(-1) >= 0 {
			cmd.SetErr(replyError("TRYAGAIN Multiple keys request during rehashing of slot"))
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}
func (tryAgainHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// With WithMinReplicas, a re-entry moves no validity deadline without a
// replica's acknowledgement: a holder re-entering while its replica is cut
// off is told of the loss at the deadline the last acknowledgement set.
func TestReentryWithMinReplicasNeedsAcknowledgement(t *testing.T) {
	_, replica, mc, _ := startReplicated(t)
	ctx := context.Background()
	l := newLock(t, mc, redistest.Key(t), redislock.WithTTL(2*time.Second), redislock.WithMinReplicas(1, 200*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	replica.Pause(t)
	defer replica.Resume(t)
	paused := time.Now()
	lost := l.Lost()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	levels := 1
	for done := false; !done; {
		select {
		case <-lost:
			done = true
		case <-tick.C:
			if time.Since(paused) > 5*time.Second {
				t.Fatal("still held 5 s after the replica was cut off: re-entries moved the deadline")
			}
			if l.Acquire(ctx) == nil {
				levels++
			}
		}
	}
	assert.Less(t, time.Since(paused), 2*time.Second+500*time.Millisecond, "lost at the deadline of the last acknowledged request")
	assert.False(t, l.Held())
	assert.Greater(t, levels, 2, "re-entries were taken meanwhile")
}

// WithMinReplicas refuses a replica timeout the client's read timeout would
// cut short.
func TestMinReplicasTimeoutBelowReadTimeout(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ReadTimeout: time.Second})
	t.Cleanup(func() { _ = c.Close() })
	_, err := redislock.New(c, "n", redislock.WithMinReplicas(1, time.Second))
	require.ErrorIs(t, err, redislock.ErrInvalidArgument)
	assert.Contains(t, err.Error(), "read timeout 1s")
	_, err = redislock.New(c, "n", redislock.WithMinReplicas(1, 900*time.Millisecond))
	assert.NoError(t, err)
}

// ErrNotReplicated from Extend does not claim an acquire failed.
func TestExtendNotReplicatedIsNotNotAcquired(t *testing.T) {
	_, replica, mc, _ := startReplicated(t)
	ctx := context.Background()
	l := newLock(t, mc, redistest.Key(t), redislock.WithTTL(5*time.Second), redislock.WithMinReplicas(1, 100*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	replica.Pause(t)
	defer replica.Resume(t)
	err := l.Extend(ctx, 0)
	require.ErrorIs(t, err, redislock.ErrNotReplicated)
	assert.False(t, errors.Is(err, redislock.ErrNotAcquired), "an extension is not an acquire: %v", err)
	assert.True(t, l.Held())
	replica.Resume(t)
	require.NoError(t, l.Release(ctx))
}

// WithClockDrift widens the margin the holder gives up on every lease:
// the validity deadline falls that share of the TTL before the expiry.
func TestClockDriftWidensTheMargin(t *testing.T) {
	c := redistest.Client(t)
	for _, bad := range []float64{-0.01, 0.5, 1} {
		_, err := redislock.New(c, "n", redislock.WithClockDrift(bad))
		assert.ErrorIs(t, err, redislock.ErrInvalidArgument, "drift %v", bad)
	}
	_, err := redislock.New(c, "n", redislock.WithClockDrift(0.2), redislock.WithTTL(time.Second), redislock.WithHeartbeat(450*time.Millisecond))
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument, "a heartbeat past half of the narrower validity")

	ctx := context.Background()
	for _, tc := range []struct {
		drift   float64
		minLoss time.Duration
		maxLoss time.Duration
	}{
		{0.01, 980 * time.Millisecond, 1000 * time.Millisecond}, // validity 988 ms
		{0.2, 790 * time.Millisecond, 810 * time.Millisecond},   // validity 798 ms
	} {
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(time.Second), redislock.WithoutHeartbeat(), redislock.WithClockDrift(tc.drift))
		start := time.Now()
		require.NoError(t, l.Acquire(ctx))
		closedWithin(t, l.Lost(), 2*time.Second)
		lostAfter := time.Since(start)
		assert.GreaterOrEqual(t, lostAfter, tc.minLoss, "drift %v", tc.drift)
		assert.Less(t, lostAfter, tc.maxLoss+100*time.Millisecond, "drift %v", tc.drift)
		_ = l.Release(ctx)
	}
}
