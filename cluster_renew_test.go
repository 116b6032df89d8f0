package redislock_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/clustertest"
)

// TestClusterRenewals checks the heartbeat on a Redis Cluster of 3 masters
// and 3 replicas: renewals batched per hash slot, renewals that follow a
// slot while it migrates, plain renewals that do not wait for another
// master's WAIT, and renewals that find the new master after the old one
// was killed, with no help from the test.
func TestClusterRenewals(t *testing.T) {
	cl := clustertest.StartCluster(t, 3, 1)
	ctx := context.Background()

	t.Run("batched per slot", func(t *testing.T) {
		c := cl.Client(t)
		calls := &renewalCalls{}
		c.AddHook(calls)
		tags := []string{"b0", "b1", "b2"}
		slots := map[int64]bool{}
		for _, tag := range tags {
			slot, err := c.ClusterKeySlot(ctx, "{"+tag+"}").Result()
			require.NoError(t, err)
			slots[slot] = true
		}
		require.Len(t, slots, len(tags), "the tags hash to distinct slots")
		// 150, 100 and 50 locks: 2, 1 and 1 calls when due together.
		name := func(i int) string {
			switch {
			case i < 150:
				return "batch{b0}:" + strconv.Itoa(i)
			case i < 250:
				return "batch{b1}:" + strconv.Itoa(i)
			default:
				return "batch{b2}:" + strconv.Itoa(i)
			}
		}
		locks := acquireMany(t, c, 300, name, redislock.WithTTL(time.Second))
		waitRenewed(t, calls, 2*len(locks), 5*time.Second, tagOf)
		for _, l := range locks {
			require.True(t, l.Held(), l.Name())
		}
	})

	t.Run("slot migrating", func(t *testing.T) {
		// The slot stays migrating for 3 s, more than the TTL. The keys of
		// acked, plain and elsewhere have moved: the source redirects their
		// renewals with ASK. Half the keys of many have moved too: a script
		// call on all of them, and on plain's, gets TRYAGAIN.
		c, other := cl.Client(t), cl.Client(t)
		const ttl = 2 * time.Second
		acked := newLock(t, c, "mig{m}:acked", redislock.WithTTL(ttl), redislock.WithMinReplicas(1, 500*time.Millisecond))
		plain := newLock(t, c, "mig{m}:plain", redislock.WithTTL(ttl))
		elsewhere := newLock(t, other, "mig{m}:other", redislock.WithTTL(ttl))
		locks := []*redislock.Lock{acked, plain, elsewhere}
		moved := []string{acked.Key(), plain.Key(), elsewhere.Key()}
		for i := range 20 {
			l := newLock(t, c, "mig{m}:many:"+strconv.Itoa(i), redislock.WithTTL(ttl))
			locks = append(locks, l)
			if i%2 == 0 {
				moved = append(moved, l.Key())
			}
		}
		for _, l := range locks {
			require.NoError(t, l.Acquire(ctx))
		}
		src := cl.MasterForKey(t, acked.Key())
		dst := otherMaster(t, cl, src)
		slot, err := c.ClusterKeySlot(ctx, acked.Key()).Result()
		require.NoError(t, err)

		finish := cl.BeginMoveSlot(t, int(slot), dst, moved...)
		finished := false
		defer func() {
			if !finished { // leave the cluster whole for the next subtest
				finish()
			}
		}()
		heldFor(t, locks, time.Now().Add(3*time.Second))
		finish()
		finished = true
		require.Equal(t, dst, cl.MasterForKey(t, acked.Key()))
		heldFor(t, locks, time.Now().Add(ttl+500*time.Millisecond))
		for _, l := range locks {
			require.NoError(t, l.Release(ctx), l.Name())
		}
	})

	t.Run("replica killed", func(t *testing.T) {
		// A lock that waits for a replica that is gone, and a plain one with
		// a much shorter TTL on another master, through one client: the
		// first is lost, the second must not wait for its WAITs. The master
		// of the next subtest keeps its replica.
		c := cl.Client(t)
		spare := cl.MasterForKey(t, redislock.DefaultKeyPrefix+"renew-killed")
		ackedName := nameOn(t, cl, "lanes-acked", func(m string) bool { return m != spare })
		waiting := cl.MasterForKey(t, redislock.DefaultKeyPrefix+ackedName)
		plainName := nameOn(t, cl, "lanes-plain", func(m string) bool { return m != waiting })
		acked := newLock(t, c, ackedName, redislock.WithTTL(3*time.Second), redislock.WithMinReplicas(1, 2*time.Second))
		plain := newLock(t, c, plainName, redislock.WithTTL(time.Second))
		require.NoError(t, acked.Acquire(ctx))
		require.NoError(t, plain.Acquire(ctx))

		cl.Kill(t, cl.ReplicaOf(t, waiting))
		killed := time.Now()
		closedWithin(t, acked.Lost(), 8*time.Second)
		t.Logf("the acknowledged lock was lost %v after its master's replica was killed", time.Since(killed))
		heldFor(t, []*redislock.Lock{plain}, killed.Add(4*time.Second))
		require.NoError(t, plain.Release(ctx))
	})

	t.Run("master killed", func(t *testing.T) {
		// The default TTL, renewed every second: the hold outlives its dead
		// master if its renewals find the promoted replica.
		c := cl.Client(t)
		l := newLock(t, c, "renew-killed", redislock.WithHeartbeat(time.Second))
		require.NoError(t, l.Acquire(ctx))
		master := cl.MasterForKey(t, l.Key())
		replica := cl.ReplicaOf(t, master)
		rc := redis.NewClient(&redis.Options{Addr: replica, OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.ReadOnly(ctx).Err()
		}})
		t.Cleanup(func() { _ = rc.Close() })
		eventually(t, 5*time.Second, func() bool {
			return rc.HGet(ctx, l.Key(), "owner").Val() == l.Owner()
		}, "the replica has the lock")

		killed := time.Now()
		cl.Kill(t, master)
		cl.Failover(t, replica)
		t.Logf("replica promoted %v after the kill", time.Since(killed))
		// Without renewals the promoted replica's PTTL only falls: above
		// TTL - 1 s, 2 s after the kill, it was renewed there.
		eventually(t, 20*time.Second, func() bool {
			pttl, err := rc.PTTL(ctx, l.Key()).Result()
			return err == nil && time.Since(killed) > 2*time.Second && pttl > redislock.DefaultTTL-time.Second
		}, "a renewal on the promoted replica")
		t.Logf("renewed on the new master %v after the kill", time.Since(killed))
		assert.True(t, l.Held())
		require.NoError(t, l.Release(ctx))
	})
}

// heldFor fails t if any of locks is lost before until, checking every
// 5 ms, and if any is not held then.
func heldFor(t *testing.T, locks []*redislock.Lock, until time.Time) {
	t.Helper()
	start := time.Now()
	for time.Now().Before(until) {
		for _, l := range locks {
			select {
			case <-l.Lost():
				t.Fatalf("%s lost %v into a wait of %v", l.Name(), time.Since(start), until.Sub(start))
			default:
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, l := range locks {
		require.True(t, l.Held(), "%s lost", l.Name())
	}
}

// nameOn returns the first lock name base:i whose key a master at an
// address that ok accepts serves.
func nameOn(t *testing.T, cl *clustertest.Cluster, base string, ok func(master string) bool) string {
	t.Helper()
	for i := range 1000 {
		name := base + ":" + strconv.Itoa(i)
		if ok(cl.MasterForKey(t, redislock.DefaultKeyPrefix+name)) {
			return name
		}
	}
	t.Fatalf("no name %s:i on a suitable master", base)
	return ""
}

// otherMaster returns the address of a master of cl other than addr.
func otherMaster(t *testing.T, cl *clustertest.Cluster, addr string) string {
	t.Helper()
	for k := range 1000 {
		if m := cl.MasterForKey(t, "probe:"+strconv.Itoa(k)); m != addr {
			return m
		}
	}
	t.Fatal("no other master")
	return ""
}
