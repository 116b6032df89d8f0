package redislock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Everything the lock does over the network works on a server that speaks
// TLS only: acquire, a waiter woken by the release's pub/sub message,
// renewals past several TTLs, loss and release.
func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	ctx := context.Background()
	c := srv.Client(t)
	require.NoError(t, c.Ping(ctx).Err())
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { _ = plain.Close() })
	require.Error(t, plain.Ping(ctx).Err(), "the server answered a client without TLS")

	t.Run("acquire, heartbeat, release", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(ttl))
		require.NoError(t, l.Acquire(ctx))
		require.Positive(t, l.Token())
		lost := l.Lost()
		held := time.NewTimer(5 * ttl)
		defer held.Stop()
		select {
		case <-lost:
			t.Fatal("lost while renewed over TLS")
		case <-held.C:
		}
		require.True(t, l.Held())
		left, err := c.PTTL(ctx, l.Key()).Result()
		require.NoError(t, err)
		require.Positive(t, left, "the key outlived its TTL only if renewed")
		require.NoError(t, l.Release(ctx))
		require.Zero(t, c.Exists(ctx, l.Key()).Val())
	})

	t.Run("wake-up", func(t *testing.T) {
		name := redistest.Key(t)
		holder := newLock(t, c, name, redislock.WithTTL(30*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		// Without the release message the waiter would sleep its 10 s
		// backoff: the holder's lease is longer.
		waiter := newLock(t, srv.Client(t), name, redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
		acquired := make(chan error, 1)
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		go func() { acquired <- waiter.Acquire(waitCtx) }()
		eventually(t, 5*time.Second, func() bool {
			chans, err := c.PubSubChannels(ctx, "redislock:*").Result()
			return err == nil && len(chans) > 0
		}, "the waiter never subscribed")
		time.Sleep(50 * time.Millisecond) // let its first attempt fail, so it sleeps the backoff
		released := time.Now()
		require.NoError(t, holder.Release(ctx))
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		select {
		case err := <-acquired:
			require.NoError(t, err)
		case <-timer.C:
			t.Fatal("the waiter was not woken by the release")
		}
		woken := time.Since(released)
		t.Logf("tls: waiter acquired %v after the release", woken.Round(time.Millisecond))
		require.Less(t, woken, 2*time.Second)
		require.Greater(t, waiter.Token(), int64(0))
		require.NoError(t, waiter.Release(ctx))
	})

	t.Run("loss", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(ttl))
		require.NoError(t, l.Acquire(ctx))
		lost := l.Lost()
		require.NoError(t, c.Del(ctx, l.Key()).Err())
		closedWithin(t, lost, 2*time.Second)
		require.False(t, l.Held())
		err := l.Release(ctx)
		require.ErrorIs(t, err, redislock.ErrLockLost)
		require.True(t, errors.Is(err, redislock.ErrNotHeld))
	})
}
