package redislock

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

// A waiter that becomes the head of its queue because the head before it
// took the lock sleeps no longer than that new hold's lease, so a hold that
// expires without a release (no heartbeat, no Release) is taken over as it
// expires, not a retry maximum later.
func TestPromotedHeadCappedByNewHoldersLease(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const lease, retryMax = 200 * time.Millisecond, 3 * time.Second
	holder := mustNew(t, srv.Client(t), "k")
	require.NoError(t, holder.Acquire(ctx))
	// Woken only by the release: had first taken the lock by polling, the
	// release message would wake second instead.
	first := mustNew(t, c, "k", WithTTL(lease), WithoutHeartbeat(), WithRetryBackoff(10*time.Second, 10*time.Second))
	second := mustNew(t, c, "k", WithRetryBackoff(retryMax, retryMax))

	firstGot := acquireAsync(ctx, first)
	waitFor(t, 5*time.Second, func() bool { n, ok := queueOf(first); return n == 1 && ok }, "first waiter subscribed")
	secondGot := acquireAsync(ctx, second)
	waitFor(t, 5*time.Second, func() bool { n, _ := queueOf(first); return n == 2 }, "second waiter queued")
	require.NoError(t, holder.Release(ctx))

	var firstAt time.Time
	select {
	case r := <-firstGot:
		require.NoError(t, r.err)
		firstAt = r.at
	case <-time.After(5 * time.Second):
		t.Fatal("first waiter not woken by the release")
	}
	// first never releases: its key expires after lease.
	select {
	case r := <-secondGot:
		require.NoError(t, r.err)
		took := r.at.Sub(firstAt)
		t.Logf("first acquired to second acquired: %v (first's lease %v, second's retry maximum %v)", took, lease, retryMax)
		assert.GreaterOrEqual(t, took, lease-10*time.Millisecond, "second got in before first's lease ran out")
		assert.Less(t, took, lease+time.Second, "the promoted head slept past the new holder's lease")
	case <-time.After(2 * retryMax):
		t.Fatal("second waiter never acquired")
	}
	require.NoError(t, second.Release(ctx))
}
