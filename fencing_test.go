package redislock_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

func TestTokenLifecycle(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	a := newLock(t, c, name)
	b := newLock(t, c, name)
	assert.Zero(t, a.Token(), "no token before an acquire")

	require.NoError(t, a.Acquire(ctx))
	first := a.Token()
	assert.Positive(t, first)
	require.NoError(t, a.Acquire(ctx))
	assert.Equal(t, first, a.Token(), "re-entry keeps the token")
	assert.Equal(t, first, mustInt64(t, c.HGet(ctx, a.Key(), "token")), "the hash records the hold's token")
	require.NoError(t, a.Release(ctx))
	require.NoError(t, a.Release(ctx))
	assert.Zero(t, a.Token(), "no token after the last release")

	require.NoError(t, b.Acquire(ctx))
	assert.Greater(t, b.Token(), first, "the next holder's token is larger")
	second := b.Token()
	require.NoError(t, b.Release(ctx))
	require.NoError(t, a.Acquire(ctx))
	assert.Greater(t, a.Token(), second)
	require.NoError(t, a.Release(ctx))
}

func mustInt64(t *testing.T, cmd *redis.StringCmd) int64 {
	t.Helper()
	n, err := cmd.Int64()
	require.NoError(t, err)
	return n
}

// fenceKeys lists the fencing counters on the server.
func fenceKeys(t *testing.T, c *redis.Client) []string {
	t.Helper()
	keys, err := c.Keys(context.Background(), "redislock:{*}:fence").Result()
	require.NoError(t, err)
	return keys
}

// The fencing counter is a plain integer without expiry; a lost counter
// restarts above every earlier token.
func TestTokenSurvivesCounterLoss(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	l := newLock(t, c, "one")
	var last int64
	for i := 0; i < 50; i++ {
		require.NoError(t, l.Acquire(ctx))
		require.Greater(t, l.Token(), last)
		last = l.Token()
		require.NoError(t, l.Release(ctx))
	}
	counters := fenceKeys(t, c)
	require.Len(t, counters, 1)
	assert.Equal(t, time.Duration(-1), c.PTTL(ctx, counters[0]).Val(), "the counter does not expire")
	assert.Equal(t, last, mustInt64(t, c.Get(ctx, counters[0])), "the counter holds the last token issued")

	require.NoError(t, c.Del(ctx, counters[0]).Err()) // as after a restart without persistence
	require.NoError(t, l.Acquire(ctx))
	assert.Greater(t, l.Token(), last, "a recreated counter starts above every earlier token")
	last = l.Token()
	require.NoError(t, l.Release(ctx))

	require.NoError(t, c.FlushAll(ctx).Err())
	require.NoError(t, l.Acquire(ctx))
	assert.Greater(t, l.Token(), last, "after a flush too")
	require.NoError(t, l.Release(ctx))
}

// Tokens strictly increase in the order holders get the lock.
func TestTokensIncreaseUnderContention(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	const workers, rounds = 8, 40
	var mu sync.Mutex
	var seen []int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		l := newLock(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				err := l.WithLock(ctx, func(context.Context) error {
					mu.Lock() // for the race detector; the lock already orders these
					seen = append(seen, l.Token())
					mu.Unlock()
					return nil
				})
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, seen, workers*rounds)
	for i := 1; i < len(seen); i++ {
		require.Greater(t, seen[i], seen[i-1], "token %d", i)
	}
}

func TestMinReplicas(t *testing.T) {
	_, _, mc, rc := startReplicated(t)
	ctx := context.Background()

	name := redistest.Key(t)
	l := newLock(t, mc, name, redislock.WithTTL(time.Second), redislock.WithMinReplicas(1, 500*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	assert.Equal(t, l.Owner(), rc.HGet(ctx, l.Key(), "owner").Val(), "the replica has the lock when Acquire returns")
	time.Sleep(1500 * time.Millisecond) // renewals acknowledged by the replica keep it
	assert.True(t, l.Held())
	require.NoError(t, l.Extend(ctx, 0))
	require.NoError(t, l.Release(ctx))

	// Asking for more replicas than exist: the acquire is undone.
	greedy := newLock(t, mc, name, redislock.WithMinReplicas(2, 50*time.Millisecond))
	err := greedy.Acquire(ctx)
	assert.ErrorIs(t, err, redislock.ErrNotReplicated)
	assert.ErrorIs(t, err, redislock.ErrNotAcquired)
	assert.False(t, greedy.Held())
	assert.Zero(t, mc.Exists(ctx, greedy.Key()).Val(), "an unreplicated acquire leaves no key")
}

// Renewals that no replica acknowledges do not count: the hold is lost at its
// validity deadline although the master still has the key.
func TestMinReplicasRenewalsMustBeAcknowledged(t *testing.T) {
	_, replica, mc, _ := startReplicated(t)
	ctx := context.Background()
	l := newLock(t, mc, redistest.Key(t), redislock.WithTTL(1500*time.Millisecond), redislock.WithMinReplicas(1, 300*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	replica.Pause(t)
	defer replica.Resume(t)
	closedWithin(t, l.Lost(), 4*time.Second)
	assert.False(t, l.Held())
	assert.Equal(t, l.Owner(), mc.HGet(ctx, l.Key(), "owner").Val(), "the master kept renewing; the hold was lost all the same")
}

// startReplicated starts a master and one replica, and returns once the
// replica is online and acknowledges writes.
func startReplicated(t *testing.T) (master, replica *redistest.Server, mc, rc *redis.Client) {
	t.Helper()
	master = redistest.Start(t, "--repl-diskless-sync-delay", "0")
	replica = redistest.Start(t, "--replicaof", "127.0.0.1", strings.Split(master.Addr(), ":")[1])
	mc, rc = master.Client(t), replica.Client(t)
	ctx := context.Background()
	eventually(t, 10*time.Second, func() bool {
		info, err := mc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "state=online") {
			return false
		}
		mc.Set(ctx, "redistest:replication-probe", "1", time.Minute)
		n, err := mc.Wait(ctx, 1, 100*time.Millisecond).Result()
		return err == nil && n == 1 && rc.Get(ctx, "redistest:replication-probe").Val() == "1"
	}, "replica online")
	return master, replica, mc, rc
}

// Names take their tokens from the counter of their key's slot, on every
// kind of client: the counters left are one per slot used, whatever the
// number of names.
func TestFenceCounterPerSlot(t *testing.T) {
	c := redistest.Start(t).Client(t)
	ctx := context.Background()
	slots := map[string]bool{}
	for i := 0; i < 200; i++ {
		l := newLock(t, c, "name:"+strconv.Itoa(i%50))
		require.NoError(t, l.Acquire(ctx))
		require.NoError(t, l.Release(ctx))
		slots[redislock.FenceKeyFor(l.Key())] = true
	}
	assert.ElementsMatch(t, keysOf(slots), fenceKeys(t, c))
}

func keysOf(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// A plain client of a server in cluster mode (one node that owns every
// slot) runs scripts whose keys share a slot: the per-slot counters.
func TestPlainClientOfAClusterNode(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	c := srv.Client(t)
	ctx := context.Background()
	require.NoError(t, c.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err())
	eventually(t, 10*time.Second, func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	}, "cluster state ok")
	var last int64
	for range 3 {
		l := newLock(t, c, "a")
		require.NoError(t, l.Acquire(ctx))
		require.Greater(t, l.Token(), last)
		last = l.Token()
		require.NoError(t, l.Release(ctx))
	}
	for _, l := range []*redislock.Lock{newLock(t, c, "b"), newLock(t, c, "c", redislock.WithFair())} {
		require.NoError(t, l.Acquire(ctx))
		assert.Positive(t, l.Token())
		require.NoError(t, l.Release(ctx))
	}
	assert.Len(t, fenceKeys(t, c), 3, "one per slot")
}
