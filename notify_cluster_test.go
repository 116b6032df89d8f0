package redislock

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/clustertest"
)

// shardSubscribers returns how many connections of the node at addr are
// subscribed to the shard channel, or -1 if the node cannot tell.
func shardSubscribers(addr, channel string) int64 {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	n, err := c.PubSubShardNumSub(context.Background(), channel).Result()
	if err != nil {
		return -1
	}
	return n[channel]
}

// notifierOf returns the notifier of client, or nil.
func notifierOf(client redis.UniversalClient) *notifier {
	notifiers.mu.Lock()
	defer notifiers.mu.Unlock()
	return notifiers.m[client]
}

// TestNotifierCluster runs the notifier's shard connections through the
// events of a Redis Cluster: its own unsubscriptions racing new waiters,
// and a killed master.
func TestNotifierCluster(t *testing.T) {
	cl := clustertest.StartCluster(t, 3, 1)
	ctx := context.Background()

	// The notifier unsubscribes an idle channel; before the server's reply
	// comes, a new waiter for the same lock subscribes it again on the same
	// connection. The reply is the notifier's own, not a slot move: the
	// channel stays subscribed, and the connection's reader goes on at once
	// with the messages of other locks.
	t.Run("own unsubscribe is not a slot move", func(t *testing.T) {
		setNotifyLinger(t, 100*time.Millisecond)
		holders, c := cl.Client(t), cl.Client(t)
		const a, b = "own{x}:a", "own{x}:b" // one slot
		holdA := mustNew(t, holders, a, WithoutHeartbeat(), WithTTL(time.Minute))
		holdB := mustNew(t, holders, b, WithoutHeartbeat(), WithTTL(time.Minute))
		require.NoError(t, holdA.Acquire(ctx))
		require.NoError(t, holdB.Acquire(ctx))
		master := cl.MasterForKey(t, holdA.Key())

		waitA := mustNew(t, c, a, WithRetryBackoff(10*time.Second, 10*time.Second))
		attempts := countEvalsha(c)
		gotA := acquireAsync(ctx, waitA)
		waitFor(t, 5*time.Second, func() bool { return attempts.n.Load() >= 2 }, "A's waiter asleep after its attempts")
		waitB := mustNew(t, c, b, WithRetryBackoff(10*time.Second, 10*time.Second))
		bctx, cancelB := context.WithCancel(ctx)
		gotB := acquireAsync(bctx, waitB)
		waitFor(t, 5*time.Second, func() bool { n, ok := queueOf(waitB); return n == 1 && ok }, "B's waiter subscribed")

		// Hold the shard's commands, the notifier's SUNSUBSCRIBE among them,
		// until B has been subscribed again.
		admin := redis.NewClient(&redis.Options{Addr: master})
		defer admin.Close()
		const pause = time.Second
		paused := time.Now()
		require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err())
		cancelB()
		require.ErrorIs(t, (<-gotB).err, context.Canceled)
		n := notifierOf(c)
		require.NotNil(t, n)
		waitFor(t, pause/2, func() bool {
			n.mu.Lock()
			defer n.mu.Unlock()
			sc := n.conns[master]
			return n.queues[waitB.channel] == nil && sc != nil && len(sc.pending) == 0 && !sc.writing
		}, "B's idle channel unsubscribed")
		_, w := join(waitB)
		defer n.leave(w, 0)
		require.Less(t, time.Since(paused), pause, "the server's pause ended too soon for the test")

		// A's release waits for the pause too; its message comes after the
		// replies about B.
		require.NoError(t, holdA.Release(ctx))
		released := time.Now()
		select {
		case r := <-gotA:
			require.NoError(t, r.err)
			took := r.at.Sub(released)
			t.Logf("release of A to acquire, behind the replies about B: %v", took)
			assert.Less(t, took, 500*time.Millisecond, "the shard's reader stalled on the notifier's own unsubscription")
		case <-time.After(10 * time.Second):
			t.Fatal("A's waiter not woken")
		}
		waitFor(t, 5*time.Second, func() bool { _, ok := queueOf(waitB); return ok }, "B's new subscription confirmed")
		n.mu.Lock()
		q := n.queues[waitB.channel]
		subscribed := q != nil && q.conn != nil
		n.mu.Unlock()
		assert.True(t, subscribed, "B's queue taken for unsubscribed")
		assert.EqualValues(t, 1, shardSubscribers(master, waitB.channel), "B's channel subscribed on the server")
		require.NoError(t, waitA.Release(ctx))
		require.NoError(t, holdB.Release(ctx))
	})

	// A killed master's shard connection fails; its channels are
	// subscribed again on the replica promoted in its place, found by
	// reloading the slot map, so that the next release wakes the waiter at
	// once.
	t.Run("killed master", func(t *testing.T) {
		// The holder's client reloads its slot map often enough for its
		// release to reach the new master; the waiter's has go-redis's
		// default of once a minute.
		holders := cl.Client(t, func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = 100 * time.Millisecond })
		c := cl.Client(t)
		const name = "killed"
		holder := mustNew(t, holders, name, WithoutHeartbeat(), WithTTL(time.Minute), WithMinReplicas(1, 2*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		master := cl.MasterForKey(t, holder.Key())
		replica := cl.ReplicaOf(t, master)

		waiter := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
		attempts := countEvalsha(c)
		got := acquireAsync(ctx, waiter)
		waitFor(t, 5*time.Second, func() bool { return attempts.n.Load() >= 2 }, "waiter asleep after its attempts")
		require.EqualValues(t, 1, shardSubscribers(master, waiter.channel))

		cl.Kill(t, master)
		killed := time.Now()
		cl.Failover(t, replica)
		promoted := time.Now()
		waitFor(t, 10*time.Second, func() bool { return shardSubscribers(replica, waiter.channel) == 1 },
			"waiter subscribed on the promoted replica")
		t.Logf("killed to promoted: %v; promoted to subscribed there: %v", promoted.Sub(killed), time.Since(promoted))
		select {
		case r := <-got:
			t.Fatalf("waiter returned while the lock was held: %v", r.err)
		default:
		}

		require.NoError(t, holder.Release(ctx))
		released := time.Now()
		select {
		case r := <-got:
			require.NoError(t, r.err)
			took := r.at.Sub(released)
			t.Logf("release to acquire on the promoted replica: %v", took)
			assert.Less(t, took, 500*time.Millisecond, "only the release message can explain this")
		case <-time.After(15 * time.Second):
			t.Fatal("waiter not woken after the failover")
		}
		require.NoError(t, waiter.Release(ctx))
	})
}

// TestNotifierClusterSlots runs a shard connection with the channels of
// several slots, which a cluster refuses to subscribe or unsubscribe in one
// command.
func TestNotifierClusterSlots(t *testing.T) {
	cl := clustertest.StartCluster(t, 3, 0)
	ctx := context.Background()
	// Lock names on one master, pairs in different slots.
	var master string
	var pairs [][]string
	for i := 0; len(pairs) < 2 || len(pairs[1]) < 2; i++ {
		require.Less(t, i, 1000, "no two names on one master in different slots")
		name := "slots:" + strconv.Itoa(i)
		key := DefaultKeyPrefix + name
		if master == "" {
			master = cl.MasterForKey(t, key)
		}
		if cl.MasterForKey(t, key) != master {
			continue
		}
		if n := len(pairs); n == 0 || len(pairs[n-1]) == 2 {
			pairs = append(pairs, []string{name})
		} else if keySlot(key) != keySlot(DefaultKeyPrefix+pairs[n-1][0]) {
			pairs[n-1] = append(pairs[n-1], name)
		}
	}

	// waitOn starts a waiter on each name, held by holders, and returns
	// them once they sleep after their attempts.
	waitOn := func(t *testing.T, c, holders *redis.ClusterClient, names []string) ([]*Lock, []<-chan acquired) {
		attempts := countEvalsha(c)
		var ls []*Lock
		var got []<-chan acquired
		for i, name := range names {
			require.NoError(t, mustNew(t, holders, name, WithoutHeartbeat(), WithTTL(time.Minute)).Acquire(ctx))
			l := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
			ls = append(ls, l)
			got = append(got, acquireAsync(ctx, l))
			waitFor(t, 5*time.Second, func() bool { return attempts.n.Load() >= int64(2*(i+1)) }, "waiter asleep")
		}
		return ls, got
	}

	t.Run("idle channels unsubscribed", func(t *testing.T) {
		setNotifyLinger(t, 100*time.Millisecond)
		holders, c := cl.Client(t), cl.Client(t)
		// A waiter that stays keeps the connection open.
		keepers, kept := waitOn(t, c, holders, pairs[1][:1])
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var done []<-chan acquired
		for _, name := range pairs[0] {
			require.NoError(t, mustNew(t, holders, name, WithoutHeartbeat(), WithTTL(time.Minute)).Acquire(ctx))
			l := mustNew(t, c, name)
			done = append(done, acquireAsync(wctx, l))
			waitFor(t, 5*time.Second, func() bool { _, ok := queueOf(l); return ok }, "waiter subscribed")
		}
		require.Len(t, shardChannelsOn(t, master), 3)
		cancel()
		for _, d := range done {
			require.ErrorIs(t, (<-d).err, context.Canceled)
		}
		waitFor(t, 20*time.Duration(notifyLinger.Load()), func() bool { return len(shardChannelsOn(t, master)) == 1 },
			"idle channels of two slots unsubscribed on the server")
		assert.Equal(t, []string{keepers[0].channel}, shardChannelsOn(t, master))
		releaseSilently(t, holders, keepers[0], kept[0])
	})

	t.Run("resubscribed after a reconnect", func(t *testing.T) {
		holders, c := cl.Client(t), cl.Client(t)
		ls, got := waitOn(t, c, holders, pairs[1])
		admin := redis.NewClient(&redis.Options{Addr: master})
		defer admin.Close()
		killed, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
		require.NoError(t, err)
		require.EqualValues(t, 1, killed)
		waitFor(t, 5*time.Second, func() bool { return len(shardChannelsOn(t, master)) == 2 },
			"channels of two slots subscribed again after the reconnect")
		for i, l := range ls {
			releaseSilently(t, holders, l, got[i])
		}
	})
}

// releaseSilently deletes the key of l's lock and announces its release,
// as the holder's release would, then checks that l, waiting with a long
// poll interval, takes the lock at once, and releases it.
func releaseSilently(t *testing.T, holders *redis.ClusterClient, l *Lock, got <-chan acquired) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, holders.Del(ctx, l.key).Err())
	require.NoError(t, holders.SPublish(ctx, l.channel, "").Err())
	released := time.Now()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		assert.Less(t, r.at.Sub(released), time.Second, "only the release message can explain this")
	case <-time.After(5 * time.Second):
		t.Fatalf("waiter on %s not woken by the release message", l.Name())
	}
	require.NoError(t, l.Release(ctx))
}

// shardChannelsOn returns the shard channels of this package that the node
// at addr has subscribers for.
func shardChannelsOn(t *testing.T, addr string) []string {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	chans, err := c.PubSubShardChannels(context.Background(), "redislock:*").Result()
	require.NoError(t, err)
	return chans
}
