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

// A hand-off whose reply is lost and retried by the client reports the
// hold it made, so the heir gets it; nothing is held that nobody knows of.
func TestHandOffReplyLostIsRetried(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	d := &replyDropper{}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Dialer: d.dialer})
	defer c.Close()
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	next := newLock(t, c, name, redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	got := make(chan error, 1)
	go func() { got <- next.Acquire(ctx) }()
	redislock.WaitQueued(t, holder, 1)
	d.arm("evalsha", holder.Owner(), next.Owner()) // only the hand-off carries both
	require.NoError(t, holder.Release(ctx))
	require.Equal(t, int32(1), d.dropped.Load(), "the reply was dropped")
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("the heir did not get the lock after the retried hand-off")
	}
	assert.True(t, next.Held())
	owner, err := c.HGet(ctx, next.Key(), "owner").Result()
	require.NoError(t, err)
	assert.Equal(t, next.Owner(), owner)
	require.NoError(t, next.Release(ctx))
	assert.Zero(t, c.Exists(ctx, next.Key()).Val())
}

// No hand-off where it would not be safe or fair: to a waiter with an owner
// identity of its own choosing (a hold it was handed without hearing of it
// could not be told from another Lock's), with replica acknowledgement on
// either side (a hand-off sends no WAIT). The waiter then gets the lock by its own
// acquire: the hash has no "from" field.
func TestNoHandOffWhereNotAllowed(t *testing.T) {
	ctx := context.Background()
	_, _, mc, _ := startReplicated(t)
	replicas := redislock.WithMinReplicas(1, time.Second)
	slow := redislock.WithRetryBackoff(10*time.Second, 10*time.Second)
	for _, tc := range []struct {
		name           string
		holder, waiter []redislock.Option
	}{
		{"waiter WithOwner", nil, []redislock.Option{redislock.WithOwner("worker-7"), slow}},
		{"holder WithoutHandOff", []redislock.Option{redislock.WithoutHandOff()}, []redislock.Option{slow}},
		{"waiter WithoutHandOff", nil, []redislock.Option{redislock.WithoutHandOff(), slow}},
		{"holder WithMinReplicas", []redislock.Option{replicas}, []redislock.Option{slow}},
		{"waiter WithMinReplicas", nil, []redislock.Option{replicas, slow}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := redistest.Key(t)
			holder := newLock(t, mc, name, tc.holder...)
			waiter := newLock(t, mc, name, tc.waiter...)
			require.NoError(t, holder.Acquire(ctx))
			got := make(chan error, 1)
			go func() { got <- waiter.Acquire(ctx) }()
			redislock.WaitQueued(t, holder, 1)
			require.NoError(t, holder.Release(ctx))
			select {
			case err := <-got:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("the waiter did not get the lock")
			}
			assert.Zero(t, mc.HExists(ctx, waiter.Key(), "from").Val(), "handed over")
			require.NoError(t, waiter.Release(ctx))
		})
	}

	// The same, with none of the above, is handed over.
	name := redistest.Key(t)
	holder, waiter := newLock(t, mc, name), newLock(t, mc, name, slow)
	require.NoError(t, holder.Acquire(ctx))
	got := make(chan error, 1)
	go func() { got <- waiter.Acquire(ctx) }()
	redislock.WaitQueued(t, holder, 1)
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-got)
	assert.True(t, mc.HExists(ctx, waiter.Key(), "from").Val(), "not handed over")
	require.NoError(t, waiter.Release(ctx))
}

// A fair lock hands itself over only to the waiter at the head of its queue
// in Redis: to a waiter of this process that is first, which leaves the
// queue; not to one queued behind a waiter of another client, which gets
// the lock first.
func TestFairHandOffFollowsTheQueue(t *testing.T) {
	ctx := context.Background()
	c, other := redistest.Client(t), redistest.Client(t)
	slow := redislock.WithRetryBackoff(10*time.Second, 10*time.Second)
	fair := redislock.WithFair()

	name := redistest.Key(t)
	holder := newLock(t, c, name, fair)
	heir := newLock(t, c, name, fair, slow)
	require.NoError(t, holder.Acquire(ctx))
	got := make(chan error, 1)
	go func() { got <- heir.Acquire(ctx) }()
	redislock.WaitQueued(t, holder, 1)
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-got)
	assert.True(t, c.HExists(ctx, heir.Key(), "from").Val(), "not handed over")
	queue, _ := redislock.FairQueueKeys(heir.Key())
	assert.Zero(t, c.ZCard(ctx, queue).Val(), "the heir is still queued")
	require.NoError(t, heir.Release(ctx))

	name = redistest.Key(t)
	holder = newLock(t, c, name, fair)
	first := newLock(t, other, name, fair, slow)
	heir = newLock(t, c, name, fair, slow)
	require.NoError(t, holder.Acquire(ctx))
	gotFirst := make(chan error, 1)
	go func() { gotFirst <- first.Acquire(ctx) }()
	redislock.WaitQueued(t, first, 1)
	gotHeir := make(chan error, 1)
	go func() { gotHeir <- heir.Acquire(ctx) }()
	redislock.WaitQueued(t, holder, 1)
	require.NoError(t, holder.Release(ctx))
	select {
	case err := <-gotFirst:
		require.NoError(t, err)
	case err := <-gotHeir:
		t.Fatalf("the waiter queued second got the lock first (err %v)", err)
	case <-time.After(5 * time.Second):
		t.Fatal("nobody got the lock")
	}
	assert.False(t, heir.Held())
	require.NoError(t, first.Release(ctx))
	require.NoError(t, <-gotHeir)
	require.NoError(t, heir.Release(ctx))
}
