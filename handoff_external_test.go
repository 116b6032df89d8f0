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
// either side (a hand-off sends no WAIT), or on a fair lock (its queue in
// Redis decides who is next). The waiter then gets the lock by its own
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
		{"holder WithMinReplicas", []redislock.Option{replicas}, []redislock.Option{slow}},
		{"waiter WithMinReplicas", nil, []redislock.Option{replicas, slow}},
		{"fair", []redislock.Option{redislock.WithFair()}, []redislock.Option{redislock.WithFair(), slow}},
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
