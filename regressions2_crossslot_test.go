package redislock_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"

	"github.com/redislock/redislock/internal/redistest"
)

// regressionCRC16 is Redis Cluster's key hash (CRC-16/XMODEM).
func regressionCRC16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// Promise (README "Fencing tokens": a redis.Client whose server refuses
// cross-slot keys "gets CROSSSLOT for its first acquire, which is then sent
// again with the slot's counter, as are all later ones of that client";
// every fresh acquisition of a name gets a larger token). Was broken: a name in
// the slot of "redislock:{}:fence" itself never gets CROSSSLOT, so a client
// that has not yet met another name takes that name's tokens from the
// shared counter, while a client that fell back takes them from the slot's
// counter: two processes on one server, and the later holder of the name
// gets the smaller token.
func TestRegressionCrossSlotFallbackTokensOfTheSharedFencesSlot(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	ctx := context.Background()
	admin := srv.Client(t)
	require.NoError(t, admin.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err())
	eventually(t, 10*time.Second, func() bool {
		info, err := admin.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	}, "cluster state ok")
	fenceSlot := regressionCRC16("redislock:{}:fence") % 16384
	name := ""
	for i := 0; i < 1<<20 && name == ""; i++ {
		if n := "n" + strconv.Itoa(i); regressionCRC16("lock:"+n)%16384 == fenceSlot {
			name = n
		}
	}
	require.NotEmpty(t, name)
	slot, err := admin.ClusterKeySlot(ctx, "lock:"+name).Result()
	require.NoError(t, err)
	require.EqualValues(t, fenceSlot, slot)

	fresh, fellBack := srv.Client(t), srv.Client(t) // two processes' clients
	a := newLock(t, fresh, name)
	require.NoError(t, a.Acquire(ctx))
	first := a.Token()
	require.NoError(t, a.Release(ctx))
	time.Sleep(20 * time.Millisecond)

	other := newLock(t, fellBack, "other") // another slot: CROSSSLOT, then the slot's counter
	require.NoError(t, other.Acquire(ctx))
	require.NoError(t, other.Release(ctx))
	b := newLock(t, fellBack, name)
	require.NoError(t, b.Acquire(ctx))
	second := b.Token()
	require.NoError(t, b.Release(ctx))
	require.Greater(t, second, first)

	require.NoError(t, a.Acquire(ctx))
	third := a.Token()
	require.NoError(t, a.Release(ctx))
	require.Greater(t, third, second, "the later holder of %q must get the larger token", name)
}

// Promise (fair.go, WithFair: "a waiter that gives up leaves the queue at
// once"; README: on a server that refuses cross-slot keys, all later
// requests of the client use the slot's counter). Was broken: the fair lock's
// leave script still names the shared counter among its keys, so on such a
// server it fails with CROSSSLOT, silently; the waiter that gave up stays
// at the head of the queue until its 3 s lease ends, and the next waiter
// cannot take the free lock meanwhile.
func TestRegressionCrossSlotFairWaiterLeaves(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	ctx := context.Background()
	c := srv.Client(t)
	require.NoError(t, c.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err())
	eventually(t, 10*time.Second, func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	}, "cluster state ok")
	name := redistest.Key(t)
	holder := newLock(t, c, name, redislock.WithFair())
	require.NoError(t, holder.Acquire(ctx)) // CROSSSLOT, then the slot's counter
	queue, _ := redislock.FairQueueKeys(holder.Key())

	quitter := newLock(t, c, name, redislock.WithFair(), redislock.WithWaitTimeout(200*time.Millisecond))
	next := newLock(t, c, name, redislock.WithFair(), redislock.WithWaitTimeout(5*time.Second))
	quitErr := make(chan error, 1)
	go func() { quitErr <- quitter.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool { return c.ZCard(ctx, queue).Val() == 1 }, "quitter queued")
	nextErr := make(chan error, 1)
	go func() { nextErr <- next.Acquire(ctx) }()
	eventually(t, 2*time.Second, func() bool { return c.ZCard(ctx, queue).Val() == 2 }, "next queued")
	require.ErrorIs(t, <-quitErr, redislock.ErrNotAcquired)
	time.Sleep(50 * time.Millisecond)
	_, err := c.ZScore(ctx, queue, quitter.Owner()).Result()
	assert.ErrorIs(t, err, redis.Nil, "the waiter that gave up is still queued")

	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-nextErr)
	assert.Less(t, time.Since(released), 500*time.Millisecond, "the next waiter took the free lock late")
	require.NoError(t, next.Release(ctx))
}
