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

// A Release does not wait for a renewal round that is stuck on the network:
// its own request, on a fresh connection, is all it waits for.
func TestHeartbeatReleaseDoesNotWaitForRound(t *testing.T) {
	srv := redistest.Start(t)
	proxy, c := proxied(t, srv, func(o *redis.Options) { o.ReadTimeout = 5 * time.Second })
	ctx := context.Background()
	calls := &renewalCalls{}
	c.AddHook(calls)
	l := newLock(t, c, redistest.Key(t), redislock.WithTTL(10*time.Second), redislock.WithHeartbeat(50*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))

	// The next round's request is dropped: it waits for its reply until the
	// 5 s read timeout.
	proxy.Blackhole()
	calls.take()
	eventually(t, 3*time.Second, func() bool { return len(calls.take()) > 0 }, "a renewal round sent into the blackhole")
	proxy.Heal()

	start := time.Now()
	require.NoError(t, l.Release(ctx))
	took := time.Since(start)
	t.Logf("release took %v with a round in flight", took)
	assert.Less(t, took, time.Second, "Release waited for the stuck round")
	assert.Zero(t, srv.Client(t).Exists(ctx, l.Key()).Val(), "the key is gone")
}
