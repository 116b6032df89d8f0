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

// One lock's WAIT does not hold up another lock's renewals on the same
// client: with the replica paused, the lock that needs its acknowledgement is
// lost, while the plain lock with a much shorter TTL keeps its lease.
func TestHeartbeatPlainRenewalsDoNotWaitForReplicas(t *testing.T) {
	_, replica, mc, _ := startReplicated(t)
	ctx := context.Background()
	key := redistest.Key(t)
	acked := newLock(t, mc, key+":acked", redislock.WithTTL(3*time.Second), redislock.WithMinReplicas(1, 2*time.Second))
	plain := newLock(t, mc, key+":plain", redislock.WithTTL(time.Second))
	require.NoError(t, acked.Acquire(ctx))
	require.NoError(t, plain.Acquire(ctx))

	replica.Pause(t)
	defer replica.Resume(t)
	paused := time.Now()
	plainLost := plain.Lost()
	closedWithin(t, acked.Lost(), 6*time.Second)
	t.Logf("the acknowledged lock was lost %v after the replica paused", time.Since(paused))

	// Four of the plain lock's TTLs with the replica paused.
	wait := time.NewTimer(time.Until(paused.Add(4 * time.Second)))
	defer wait.Stop()
	select {
	case <-plainLost:
		t.Fatalf("the plain lock was lost %v after the replica paused, while the master held it", time.Since(paused))
	case <-wait.C:
	}
	assert.True(t, plain.Held())
	assert.Equal(t, plain.Owner(), mc.HGet(ctx, plain.Key(), "owner").Val())
	require.NoError(t, plain.Release(ctx))
}
