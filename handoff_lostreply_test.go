package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// A hand-off whose reply is lost, and not retried, while the heir's wait
// ends: the releaser, which still holds the heir's request slot, gives back
// whatever hold the heir's owner has, so nothing stays held that nobody
// knows of (the key would otherwise stay the heir's for its whole TTL).
func TestHandOffLostReplyLeavesNoOrphan(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	d := &replyDropper{}
	c := droppingClient(t, srv.Addr(), d, func(o *redis.Options) { o.MaxRetries = -1 })
	name := redistest.Key(t)
	warmHandOff(t, c, name+":warm")
	holder := newLock(t, c, name, redislock.WithTTL(2*time.Second))
	heir := newLock(t, c, name, redislock.WithTTL(30*time.Second),
		redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan error, 1)
	go func() { got <- heir.Acquire(wctx) }()
	redislock.WaitQueued(t, holder, 1)
	var heirErr error
	d.onDrop = func() {
		// The server has run the hand-off; the heir's wait ends before
		// the releaser learns the reply is lost.
		cancel()
		heirErr = <-got
	}
	d.arm("evalsha", holder.Owner(), heir.Owner()) // only the hand-off carries both
	relErr := holder.Release(ctx)
	require.Equal(t, int32(1), d.dropped.Load(), "the hand-off's reply was dropped")
	t.Logf("releaser: %v", relErr)
	t.Logf("heir: %v", heirErr)
	require.ErrorIs(t, heirErr, redislock.ErrNotAcquired)
	require.False(t, heir.Held())
	require.False(t, holder.Held())

	owner := c.HGet(ctx, heir.Key(), "owner").Val()
	pttl := c.PTTL(ctx, heir.Key()).Val()
	t.Logf("after both returned: owner=%q (heir %q) pttl=%v", owner, heir.Owner(), pttl)
	assert.NotEqual(t, heir.Owner(), owner, "the key is held by the heir, whose Acquire failed")
	assert.LessOrEqual(t, pttl, 2*time.Second, "the key outlives the releaser's TTL")

	// Nobody else gets the lock until the heir's TTL runs out.
	other := newLock(t, c, name)
	ok, err := other.TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "the lock is free once everyone has returned")
	if ok {
		require.NoError(t, other.Release(ctx))
	}
	_ = c.Del(ctx, heir.Key()).Err()
}

// warmHandOff hands a lock of name over once through c, so that the
// server has the hand-off script and a later EVALSHA of it runs at once.
func warmHandOff(t *testing.T, c redis.UniversalClient, name string) {
	t.Helper()
	ctx := context.Background()
	a, b := newLock(t, c, name), newLock(t, c, name)
	require.NoError(t, a.Acquire(ctx))
	got := make(chan error, 1)
	go func() { got <- b.Acquire(ctx) }()
	redislock.WaitQueued(t, a, 1)
	require.NoError(t, a.Release(ctx))
	require.NoError(t, <-got)
	require.NoError(t, b.Release(ctx))
}
