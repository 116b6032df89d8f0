package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Promise (Release: the last level deletes the key; a fencing counter that
// is not an integer fails acquires, with WRONGTYPE). Was broken: when a local
// waiter is there, the last release is the hand-off script, which takes
// the heir's token before it deletes anything; a counter that is not an
// integer (an operator's SET, or the waits key of the lock "fence" on a
// Ring, see TestRegressionWaitsKeyIsTheSlotFence) makes it return the error
// with the hold still on the key: Release fails, the Lock has already
// given the hold up locally, and the key stays for its whole TTL.
func TestRegressionReleaseWithABadCounterFreesTheLock(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	waiter := newLock(t, c, name, redislock.WithWaitTimeout(500*time.Millisecond))
	require.NoError(t, holder.Acquire(ctx))
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	redislock.WaitQueued(t, waiter, 1)

	require.NoError(t, c.Set(ctx, redislock.FenceKeyFor(holder.Key()), "not a number", 0).Err())
	err := holder.Release(ctx)
	assert.NoError(t, err, "the release must free the lock")
	assert.False(t, holder.Held())
	assert.Zero(t, c.Exists(ctx, holder.Key()).Val(), "the released hold is still on the key, owned by %q (holder %q)",
		c.HGet(ctx, holder.Key(), "owner").Val(), holder.Owner())
	<-done
}

// Promise (as above: the last release deletes the key). Was broken the same
// way on a server over maxmemory with noeviction: the hand-off script's
// first write is the heir's token (INCR), which the server refuses, so
// nothing is deleted and the key stays for its TTL while the holder's Lock
// has given the hold up; a plain release deletes first.
func TestRegressionReleaseWithAWaiterUnderMaxmemory(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := srv.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	waiter := newLock(t, c, name, redislock.WithWaitTimeout(500*time.Millisecond))
	require.NoError(t, holder.Acquire(ctx))
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	redislock.WaitQueued(t, waiter, 1)

	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "1").Err())
	err := holder.Release(ctx)
	exists := c.Exists(ctx, holder.Key()).Val()
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "0").Err())
	t.Logf("release: %v", err)
	assert.Zero(t, exists, "the released hold is still on the key")
	<-done
}
