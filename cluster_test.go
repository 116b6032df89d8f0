package redislock_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/clustertest"
)

// TestCluster runs the library on a real Redis Cluster of 3 masters and 3
// replicas: contention on keys spread over all masters, sharded wake-ups,
// a live reshard of a slot whose lock is held and waited for, and replica
// promotions.
func TestCluster(t *testing.T) {
	cl := clustertest.StartCluster(t, 3, 1)
	ctx := context.Background()

	t.Run("contention on many keys", func(t *testing.T) {
		clients := []*redis.ClusterClient{cl.Client(t), cl.Client(t)}
		const keys, perKey, rounds = 12, 4, 10
		masters := make(map[string]bool)
		var overlaps atomic.Int32
		var wg sync.WaitGroup
		for k := 0; k < keys; k++ {
			name := "contend:" + strconv.Itoa(k)
			masters[cl.MasterForKey(t, redislock.DefaultKeyPrefix+name)] = true
			counter := "{" + redislock.DefaultKeyPrefix + name + "}:counter"
			var inside atomic.Int32
			for w := 0; w < perKey; w++ {
				c := clients[w%len(clients)]
				l := newLock(t, c, name)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for r := 0; r < rounds; r++ {
						err := l.WithLock(ctx, exclusiveIncrement(c, counter, &inside, &overlaps))
						if !assert.NoError(t, err) {
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		assert.Zero(t, overlaps.Load())
		assert.Len(t, masters, 3, "lock keys should spread over every master")
		for k := 0; k < keys; k++ {
			counter := "{" + redislock.DefaultKeyPrefix + "contend:" + strconv.Itoa(k) + "}:counter"
			n, err := clients[0].Get(ctx, counter).Int()
			require.NoError(t, err)
			assert.Equal(t, perKey*rounds, n, counter)
		}
	})

	t.Run("sharded wake-up", func(t *testing.T) {
		c := cl.Client(t)
		holder := newLock(t, c, "wake")
		waiter := newLock(t, cl.Client(t), "wake", redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		master := cl.MasterForKey(t, holder.Key())
		got := make(chan error, 1)
		go func() { got <- waiter.Acquire(ctx) }()
		eventually(t, 5*time.Second, func() bool {
			return shardChannels(t, master) == 1
		}, "waiter subscribed on the key's shard")
		time.Sleep(20 * time.Millisecond) // let its attempt fail and its 10 s sleep begin
		require.NoError(t, holder.Release(ctx))
		released := time.Now()
		select {
		case err := <-got:
			require.NoError(t, err)
			t.Logf("release to acquire: %v", time.Since(released))
			assert.Less(t, time.Since(released), time.Second, "only the SPUBLISH can explain this")
		case <-time.After(5 * time.Second):
			t.Fatal("waiter not woken by the sharded release")
		}
		require.NoError(t, waiter.Release(ctx))
	})

	t.Run("reshard while held and waited for", func(t *testing.T) {
		c := cl.Client(t)
		// A TTL of 2 s keeps the heartbeat renewing across the move; the
		// waiter's 10 s poll interval, and the holder's lease far beyond the
		// release, leave only the sharded message, resubscribed on the new
		// master, to wake it quickly.
		holder := newLock(t, c, "reshard", redislock.WithTTL(2*time.Second))
		waiter := newLock(t, cl.Client(t), "reshard", redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		token := holder.Token()
		got := make(chan error, 1)
		go func() { got <- waiter.Acquire(ctx) }()
		time.Sleep(50 * time.Millisecond)

		src := cl.MasterForKey(t, holder.Key())
		var dst string
		for _, addr := range cl.Addrs() {
			if addr != src && cl.MasterForKey(t, "other-master-probe:"+addr) == addr {
				dst = addr
				break
			}
		}
		if dst == "" { // pick any other master
			for k := 0; dst == ""; k++ {
				if m := cl.MasterForKey(t, "probe:"+strconv.Itoa(k)); m != src {
					dst = m
				}
			}
		}
		slot, err := c.ClusterKeySlot(ctx, holder.Key()).Result()
		require.NoError(t, err)
		cl.MoveSlot(t, int(slot), dst)
		require.Equal(t, dst, cl.MasterForKey(t, holder.Key()))

		// Renewals follow the slot: the hold outlives its TTL.
		time.Sleep(2500 * time.Millisecond)
		assert.True(t, holder.Held(), "the hold did not survive the reshard")
		select {
		case err := <-got:
			t.Fatalf("waiter acquired while the holder held: %v", err)
		default:
		}
		eventually(t, 5*time.Second, func() bool {
			return shardChannels(t, dst) == 1
		}, "waiter subscribed again on the new master")
		require.NoError(t, holder.Release(ctx))
		released := time.Now()
		select {
		case err := <-got:
			require.NoError(t, err)
			t.Logf("release to acquire after the reshard: %v", time.Since(released))
			assert.Less(t, time.Since(released), time.Second, "only the resubscribed message can explain this")
		case <-time.After(15 * time.Second):
			t.Fatal("waiter not woken after the reshard")
		}
		assert.Greater(t, waiter.Token(), token, "tokens increase across the reshard")
		require.NoError(t, waiter.Release(ctx))
	})

	t.Run("replica promotion", func(t *testing.T) {
		c := cl.Client(t)
		holder := newLock(t, c, "promote", redislock.WithTTL(2*time.Second), redislock.WithMinReplicas(1, 500*time.Millisecond))
		rival := newLock(t, cl.Client(t), "promote", redislock.WithTTL(2*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		token := holder.Token()
		master := cl.MasterForKey(t, holder.Key())
		cl.Failover(t, cl.ReplicaOf(t, master))
		require.NotEqual(t, master, cl.MasterForKey(t, holder.Key()))

		// The acknowledged hold is on the new master: a rival is refused
		// and the holder keeps renewing.
		ok, err := rival.TryAcquire(ctx)
		require.NoError(t, err)
		assert.False(t, ok, "the promoted replica did not have the lock")
		time.Sleep(2500 * time.Millisecond)
		assert.True(t, holder.Held(), "the hold did not survive the promotion")
		require.NoError(t, holder.Release(ctx))
		ok, err = rival.TryAcquire(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		assert.Greater(t, rival.Token(), token, "tokens increase across the promotion")
		require.NoError(t, rival.Release(ctx))
	})

	t.Run("master killed", func(t *testing.T) {
		// Two holds on the same shard: one that asks for a replica's
		// acknowledgement and one that does not. The promoted replica has no
		// replica of its own, so the first can no longer be renewed safely
		// and must be reported lost; the second goes on if the kill did not
		// beat replication. Either way nobody gets in before the holder is
		// told.
		c := cl.Client(t)
		acked := newLock(t, c, "killed{k}", redislock.WithTTL(2*time.Second), redislock.WithMinReplicas(1, 200*time.Millisecond))
		plain := newLock(t, c, "killed{k}:plain", redislock.WithTTL(2*time.Second))
		require.NoError(t, acked.Acquire(ctx))
		require.NoError(t, plain.Acquire(ctx))
		master := cl.MasterForKey(t, acked.Key())
		require.Equal(t, master, cl.MasterForKey(t, plain.Key()))
		replica := cl.ReplicaOf(t, master)
		cl.Kill(t, master)
		cl.Failover(t, replica)
		// No ReloadState here: the heartbeat must find the new master itself.

		for _, tc := range []struct {
			holder     *redislock.Lock
			mustBeLost bool
		}{{acked, true}, {plain, false}} {
			rivalClient := cl.Client(t)
			rival := newLock(t, rivalClient, tc.holder.Name(), redislock.WithTTL(2*time.Second))
			var lostAt atomic.Int64
			lost := tc.holder.Lost()
			done := make(chan struct{})
			go func() {
				defer close(done)
				select {
				case <-lost:
					lostAt.Store(time.Now().UnixNano())
				case <-time.After(8 * time.Second):
				}
			}()
			var gotAt int64
			for end := time.Now().Add(6 * time.Second); time.Now().Before(end) && gotAt == 0; time.Sleep(10 * time.Millisecond) {
				if ok, err := rival.TryAcquire(ctx); err == nil && ok {
					gotAt = time.Now().UnixNano()
				}
			}
			<-done
			switch {
			case gotAt != 0:
				require.NotZero(t, lostAt.Load(), "%s: two holders after the master was killed", tc.holder.Name())
				assert.Less(t, lostAt.Load(), gotAt, "%s: the rival got in before the holder was told", tc.holder.Name())
				t.Logf("%s: lost with the master, told %v before the rival got in", tc.holder.Name(), time.Duration(gotAt-lostAt.Load()))
				require.NoError(t, rival.Release(ctx))
			default:
				assert.False(t, tc.mustBeLost, "%s: renewed without a replica to acknowledge it", tc.holder.Name())
				assert.True(t, tc.holder.Held())
				t.Logf("%s: survived the killed master", tc.holder.Name())
			}
			_ = tc.holder.Release(ctx)
		}
	})
}

// shardChannels returns how many of this library's shard channels the node
// at addr has subscribers for, or -1 if it cannot tell.
func shardChannels(t *testing.T, addr string) int {
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	chans, err := c.PubSubShardChannels(context.Background(), "redislock:*").Result()
	if err != nil {
		return -1
	}
	return len(chans)
}
