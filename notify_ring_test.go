package redislock

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

// commandCounter is a go-redis hook that counts the commands named name
// that a client has completed.
type commandCounter struct {
	name string
	n    atomic.Int64
}

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == h.name {
			h.n.Add(1)
		}
		return err
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// countEvalsha adds a commandCounter of EVALSHA, the acquire attempts, to c.
func countEvalsha(c interface{ AddHook(redis.Hook) }) *commandCounter {
	h := &commandCounter{name: "evalsha"}
	c.AddHook(h)
	return h
}

// startRing starts n private servers and returns a function making Rings
// over them, closed by t.Cleanup, and each server by its address.
func startRing(t *testing.T, n int) (func(...func(*redis.RingOptions)) *redis.Ring, map[string]*redistest.Server) {
	addrs := make(map[string]string)
	servers := make(map[string]*redistest.Server)
	for i := range n {
		srv := redistest.Start(t)
		addrs["shard"+strconv.Itoa(i)] = srv.Addr()
		servers[srv.Addr()] = srv
	}
	return func(opts ...func(*redis.RingOptions)) *redis.Ring {
		o := &redis.RingOptions{Addrs: addrs}
		for _, opt := range opts {
			opt(o)
		}
		r := redis.NewRing(o)
		t.Cleanup(func() { _ = r.Close() })
		return r
	}, servers
}

// ringName returns a lock name whose key the Ring r routes to another shard
// than the key's release channel, and the address of the key's shard.
func ringName(t *testing.T, r *redis.Ring) (string, string) {
	for i := range 1000 {
		name := "ring:" + strconv.Itoa(i)
		key := DefaultKeyPrefix + name
		k, err := r.GetShardClientForKey(key)
		require.NoError(t, err)
		c, err := r.GetShardClientForKey(channelFor(key))
		require.NoError(t, err)
		if k != c {
			return name, k.Options().Addr
		}
	}
	t.Fatal("no name whose key and channel live on different shards")
	return "", ""
}

// acquireAsync runs l.Acquire in a goroutine, and sends its error, or its
// panic as an error, with the time it returned.
func acquireAsync(ctx context.Context, l *Lock) <-chan acquired {
	done := make(chan acquired, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- acquired{err: fmt.Errorf("Acquire panicked: %v", r), at: time.Now()}
			}
		}()
		err := l.Acquire(ctx)
		done <- acquired{err: err, at: time.Now()}
	}()
	return done
}

type acquired struct {
	err error
	at  time.Time
}

// A waiter on a Ring is woken by the release, which the release script
// publishes on the shard of the lock's key, even when the Ring would route
// the channel's name to another shard.
func TestRingWaiterWokenByRelease(t *testing.T) {
	newRing, servers := startRing(t, 3)
	holders, waiters := newRing(), newRing()
	ctx := context.Background()
	name, keyShard := ringName(t, waiters)
	holder := mustNew(t, holders, name)
	waiter := mustNew(t, waiters, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	attempts := countEvalsha(waiters)
	require.NoError(t, holder.Acquire(ctx))

	got := acquireAsync(ctx, waiter)
	// Two attempts: the one before waiting and the head's first, after its
	// subscription was confirmed. Then it sleeps 10 s unless woken.
	waitFor(t, 5*time.Second, func() bool {
		select {
		case r := <-got:
			t.Fatalf("waiter's Acquire returned while the lock was held: %v", r.err)
		default:
		}
		return attempts.n.Load() >= 2
	}, "waiter's second attempt")
	n, err := servers[keyShard].Client(t).PubSubNumSub(ctx, waiter.channel).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n[waiter.channel], "waiter subscribed on the shard of the key")
	require.NoError(t, holder.Release(ctx))
	released := time.Now()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		took := r.at.Sub(released)
		t.Logf("release to acquire on a Ring: %v", took)
		assert.Less(t, took, time.Second, "only the release message can explain this")
	case <-time.After(15 * time.Second):
		t.Fatal("waiter on a Ring not woken")
	}
	require.NoError(t, waiter.Release(ctx))
}

// When a Ring drops a dead shard, the keys it served go to another, and so
// do the releases of their locks: a waiter subscribed on the dead shard is
// subscribed on the new one, and tries again once it is.
func TestRingWaiterFollowsADroppedShard(t *testing.T) {
	setNotifyLinger(t, 100*time.Millisecond)
	newRing, servers := startRing(t, 3)
	fast := func(o *redis.RingOptions) { o.HeartbeatFrequency = 50 * time.Millisecond }
	holders, waiters := newRing(fast), newRing(fast)
	ctx := context.Background()
	name, keyShard := ringName(t, waiters)
	holder := mustNew(t, holders, name)
	waiter := mustNew(t, waiters, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	attempts := countEvalsha(waiters)
	require.NoError(t, holder.Acquire(ctx))
	got := acquireAsync(ctx, waiter)
	waitFor(t, 5*time.Second, func() bool { return attempts.n.Load() >= 2 }, "waiter's second attempt")

	// The lock dies with its shard; the key then lives, free, elsewhere.
	servers[keyShard].Kill(t)
	killed := time.Now()
	select {
	case r := <-got:
		require.NoError(t, r.err)
		t.Logf("shard killed to acquired on its successor: %v", r.at.Sub(killed))
		assert.Less(t, r.at.Sub(killed), 5*time.Second, "the waiter slept through the Ring's change")
	case <-time.After(15 * time.Second):
		t.Fatal("waiter not woken after its shard was dropped")
	}
	moved, err := waiters.GetShardClientForKey(waiter.key)
	require.NoError(t, err)
	require.NotEqual(t, keyShard, moved.Options().Addr)
	n, err := servers[moved.Options().Addr].Client(t).PubSubNumSub(ctx, waiter.channel).Result()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n[waiter.channel], "waiter subscribed on the key's new shard")
	require.NoError(t, waiter.Release(ctx))
	waitFor(t, 5*time.Second, func() bool {
		n := notifierOf(waiters)
		if n == nil {
			return true
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		return n.conns[keyShard] == nil
	}, "the dead shard's connection closed")
}

// panickySubscriber is a client whose Subscribe panics, as Ring.Subscribe
// does without a channel.
type panickySubscriber struct{ *redis.Client }

func (panickySubscriber) Subscribe(context.Context, ...string) *redis.PubSub {
	panic("panickySubscriber: no subscriptions")
}

// A client whose Subscribe panics fails its own waiters' Acquire with that
// panic, which the caller may recover; it leaves nothing locked behind, so
// the next waits on it, and waits on every other client, go on.
func TestPanickingSubscribeDoesNotPoisonOtherClients(t *testing.T) {
	srv := redistest.Start(t)
	good := srv.Client(t)
	bad := panickySubscriber{srv.Client(t)}
	ctx := context.Background()
	holder := mustNew(t, good, "k")
	require.NoError(t, holder.Acquire(ctx))

	for i := range 2 {
		l := mustNew(t, bad, "k")
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		select {
		case r := <-acquireAsync(wctx, l):
			assert.ErrorContains(t, r.err, "panicked", "Acquire %d on the panicking client", i)
		case <-time.After(5 * time.Second):
			t.Fatalf("Acquire %d on the panicking client blocked", i)
		}
		cancel()
	}
	assert.Zero(t, waiting.Load(), "a panicked wait left a waiter counted")

	waiter := mustNew(t, good, "k", WithRetryBackoff(10*time.Second, 10*time.Second))
	got := acquireAsync(ctx, waiter)
	waitFor(t, 5*time.Second, func() bool { n, ok := queueOf(waiter); return n == 1 && ok }, "waiter on the other client subscribed")
	require.NoError(t, holder.Release(ctx))
	select {
	case r := <-got:
		require.NoError(t, r.err)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter on another client blocked after the panic")
	}
	require.NoError(t, waiter.Release(ctx))
}
