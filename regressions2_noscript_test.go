package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Checked: a hand-off after SCRIPT FLUSH (NOSCRIPT, then EVAL with the
// same keys and arguments) hands the lock over, for the mutex and the fair
// lock.
func TestRegressionHandOffAfterScriptFlush(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)
	for _, opts := range [][]redislock.Option{nil, {redislock.WithFair()}} {
		name := redistest.Key(t)
		a := newLock(t, c, name, opts...)
		b := newLock(t, c, name, opts...)
		require.NoError(t, a.Acquire(ctx))
		done := make(chan error, 1)
		go func() {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			done <- b.Acquire(actx)
		}()
		redislock.WaitQueued(t, b, 1)
		require.NoError(t, c.ScriptFlush(ctx).Err())
		require.NoError(t, a.Release(ctx))
		require.NoError(t, <-done)
		require.True(t, b.Held())
		owner, err := c.HGet(ctx, b.Key(), "owner").Result()
		require.NoError(t, err)
		require.Equal(t, b.Owner(), owner)
		require.NoError(t, b.Release(ctx))
	}
}
