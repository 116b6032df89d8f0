package redislock_test

import (
	"context"
	"fmt"
	"io"
	"strings"
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

// Regression: "A waiter whose wait ends while reserved gets nothing and
// the releaser gives the granted hold back" (handoff.go), and Release's "a
// failed last release leaves the key to expire after its TTL". When the
// hand-off's reply is lost and not retried while the heir's wait ends, the
// server holds the heir's new hold: owned by a Lock whose Acquire failed,
// for the heir's whole TTL, though the releaser still held the heir's
// request slot and could give it back as attempt does after a failed
// acquire (sendRelease with "0").
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

// failingHook fails, without sending it, the first command for which fail
// returns true, and runs before ahead of every command.
type failingHook struct {
	mu     sync.Mutex
	before func(redis.Cmder)
	fail   func(redis.Cmder) bool
	failed int
}

func (h *failingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		before, fail := h.before, h.fail
		if fail != nil && fail(cmd) {
			h.fail = nil
			h.failed++
			h.mu.Unlock()
			cmd.SetErr(io.ErrUnexpectedEOF)
			return cmd.Err()
		}
		h.mu.Unlock()
		if before != nil {
			before(cmd)
		}
		return next(ctx, cmd)
	}
}
func (h *failingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Regression: Release's "a failed last release leaves the key to expire
// after its TTL and returns the Redis error". When the heir's wait ended
// during the hand-off, the releaser gives the heir's new hold back; if that
// give-back fails, Release still returns nil, while the key stays held by
// the heir (whose Acquire failed) for the heir's TTL.
func TestHandOffFailedGiveBackIsReported(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
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
	var handedOff atomic.Bool
	hook := &failingHook{}
	hook.before = func(cmd redis.Cmder) {
		if isHandOff(cmd) {
			cancel() // the heir's wait ends before the hand-off's reply
			heirErr = <-got
			handedOff.Store(true)
		}
	}
	hook.fail = func(cmd redis.Cmder) bool {
		// The give-back: the first release (two keys) after the hand-off.
		return handedOff.Load() && strings.EqualFold(cmd.Name(), "evalsha") && fmt.Sprint(cmd.Args()[2]) == "2"
	}
	c.AddHook(hook)
	relErr := holder.Release(ctx)
	t.Logf("heir: %v", heirErr)
	t.Logf("releaser: %v", relErr)
	require.ErrorIs(t, heirErr, redislock.ErrNotAcquired)
	require.Equal(t, 1, hook.failed, "the give-back failed")
	require.False(t, heir.Held())
	owner := c.HGet(ctx, heir.Key(), "owner").Val()
	pttl := c.PTTL(ctx, heir.Key()).Val()
	t.Logf("after both returned: owner=%q (heir %q) pttl=%v", owner, heir.Owner(), pttl)
	if owner == heir.Owner() {
		assert.Error(t, relErr, "Release reported success, and the key is held for the heir's TTL (%v)", pttl)
	}
	_ = c.Del(ctx, heir.Key()).Err()
}

// Checked: with the client's retries, a hand-off whose reply is
// lost while the heir's wait ends is retried, learns its token from the
// "from" field, and gives the hold back: the lock is free afterwards.
func TestHandOffRetriedAfterTheHeirLeft(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	d := &replyDropper{}
	c := droppingClient(t, srv.Addr(), d)
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
	d.onDrop = func() { cancel(); heirErr = <-got }
	d.arm("evalsha", holder.Owner(), heir.Owner())
	require.NoError(t, holder.Release(ctx))
	require.Equal(t, int32(1), d.dropped.Load())
	require.ErrorIs(t, heirErr, redislock.ErrNotAcquired)
	assert.False(t, heir.Held())
	assert.Zero(t, c.Exists(ctx, heir.Key()).Val(), "the handed hold was given back")
}
