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
