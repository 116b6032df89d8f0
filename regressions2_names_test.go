package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Promise (mutex.go, README "Fencing tokens"): the fencing counter of a
// slot serves every lock name of that slot and is never written but by
// INCR. Was broken: the waits key of the lock key "fence" is named
// "redislock:{T}:fence", the fencing counter of its own slot, so a refused
// acquire of that name overwrites the counter with "*" for 10 s, and every
// lock of the slot then fails to acquire with a WRONGTYPE error.
func TestRegressionWaitsKeyIsTheSlotFence(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr()}})
	t.Cleanup(func() { _ = ring.Close() })

	holder, err := redislock.New(ring, "nce", redislock.WithKeyPrefix("fe"), redislock.WithWaitTimeout(0))
	require.NoError(t, err)
	require.Equal(t, "fence", holder.Key())
	rival, err := redislock.New(ring, "nce", redislock.WithKeyPrefix("fe"), redislock.WithWaitTimeout(0))
	require.NoError(t, err)
	// Another lock of the same slot: "{fence}x" hashes as "fence".
	other, err := redislock.New(ring, "x", redislock.WithKeyPrefix("{fence}"), redislock.WithWaitTimeout(0))
	require.NoError(t, err)

	require.NoError(t, holder.Acquire(ctx))
	require.ErrorIs(t, rival.Acquire(ctx), redislock.ErrNotAcquired) // refused: records itself
	require.NoError(t, holder.Release(ctx))

	err = other.Acquire(ctx)
	require.NoError(t, err, "a free lock of the slot must be acquired")
	require.NoError(t, other.Release(ctx))
	err = rival.Acquire(ctx)
	require.NoError(t, err, "the free lock must be acquired")
	require.NoError(t, rival.Release(ctx))
}

// Promise (README key layout, ACL): a fair lock's queue key belongs to that
// fair lock. Was broken: a mutex whose key is "queue:" + the fair lock's key
// (same slot, through a hash tag) has its waits key named exactly as the
// fair lock's queue; a refused acquire of the mutex SETs a string there, and
// the fair lock can then neither queue nor take the lock (WRONGTYPE).
func TestRegressionWaitsKeyIsAFairQueue(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)

	fair, err := redislock.New(c, "{q}", redislock.WithFair(), redislock.WithWaitTimeout(0))
	require.NoError(t, err)
	queue, _ := redislock.FairQueueKeys(fair.Key())

	m1, err := redislock.New(c, "{q}", redislock.WithKeyPrefix("queue:lock:"), redislock.WithWaitTimeout(0))
	require.NoError(t, err)
	m2, err := redislock.New(c, "{q}", redislock.WithKeyPrefix("queue:lock:"), redislock.WithWaitTimeout(0))
	require.NoError(t, err)
	require.NoError(t, m1.Acquire(ctx))
	require.ErrorIs(t, m2.Acquire(ctx), redislock.ErrNotAcquired)
	typ := c.Type(ctx, queue).Val()
	require.NoError(t, m1.Release(ctx))

	err = fair.Acquire(ctx)
	require.NoError(t, err, "the free fair lock must be acquired (its queue key %s is now a %s)", queue, typ)
	require.NoError(t, fair.Release(ctx))
}

// Promise (README "Fencing tokens"): every fresh acquisition of a name, by
// anyone using this library, gets a larger token. Was broken: a *redis.Client
// takes tokens from redislock:{}:fence while a Ring (or a cluster client of
// a Sentinel-managed server) on the same server takes them from the slot's
// counter; the two are not ordered, so a later holder gets a smaller token.
func TestRegressionTokensAcrossClientKinds(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	plain := srv.Client(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr()}})
	t.Cleanup(func() { _ = ring.Close() })

	// The shared counter exists first (any name of the plain client).
	first, err := redislock.New(plain, "first")
	require.NoError(t, err)
	require.NoError(t, first.Acquire(ctx))
	require.NoError(t, first.Release(ctx))
	time.Sleep(20 * time.Millisecond)

	viaRing, err := redislock.New(ring, "name")
	require.NoError(t, err)
	require.NoError(t, viaRing.Acquire(ctx))
	before := viaRing.Token()
	require.NoError(t, viaRing.Release(ctx))

	viaPlain, err := redislock.New(plain, "name")
	require.NoError(t, err)
	require.NoError(t, viaPlain.Acquire(ctx))
	after := viaPlain.Token()
	require.NoError(t, viaPlain.Release(ctx))
	require.Greater(t, after, before, "the later holder of the name must get the larger token")
}
