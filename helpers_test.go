package redislock_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/faultproxy"
	"github.com/redislock/redislock/internal/redistest"
)

// exclusiveIncrement returns a critical section that increments counter by
// a read-modify-write, which loses updates unless sections exclude each
// other, and that counts in overlaps every section begun while another ran.
func exclusiveIncrement(c redis.Cmdable, counter string, inside, overlaps *atomic.Int32) func(context.Context) error {
	return func(ctx context.Context) error {
		if inside.Add(1) != 1 {
			overlaps.Add(1)
		}
		defer inside.Add(-1)
		n, err := c.Get(ctx, counter).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		return c.Set(ctx, counter, n+1, 0).Err()
	}
}

// proxied returns a client that reaches srv through a fault proxy, closed
// with the proxy by t.Cleanup. Unless opts say otherwise, the client does
// not retry and times out reads after 100 ms, so a blackhole shows quickly.
func proxied(t *testing.T, srv *redistest.Server, opts ...func(*redis.Options)) (*faultproxy.Proxy, *redis.Client) {
	t.Helper()
	proxy, err := faultproxy.New(srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	o := &redis.Options{Addr: proxy.Addr(), MaxRetries: -1, ReadTimeout: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return proxy, c
}

// toldBeforeRival takes the lock with rival the moment the server lets go
// of it, polling for up to d, and checks that holder, cut off from Redis,
// had been told of its loss before. It releases the rival's hold.
func toldBeforeRival(t *testing.T, holder, rival *redislock.Lock, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	lost := holder.Lost()
	var lostAt atomic.Int64
	done := make(chan struct{})
	stop := make(chan struct{})
	defer func() { close(stop); <-done }()
	go func() {
		defer close(done)
		select {
		case <-lost:
			lostAt.Store(time.Now().UnixNano())
		case <-stop:
		}
	}()
	var gotAt time.Time
	for end := time.Now().Add(d); time.Now().Before(end) && gotAt.IsZero(); time.Sleep(time.Millisecond) {
		ok, err := rival.TryAcquire(ctx)
		require.NoError(t, err)
		if ok {
			gotAt = time.Now()
		}
	}
	require.False(t, gotAt.IsZero(), "rival never acquired")
	eventually(t, time.Second, func() bool { return lostAt.Load() != 0 }, "holder never told")
	require.Less(t, lostAt.Load(), gotAt.UnixNano(), "two holders: the rival got in before the holder was told")
	require.False(t, holder.Held())
	require.NoError(t, rival.Release(ctx))
}
