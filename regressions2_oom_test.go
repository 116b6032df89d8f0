package redislock_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Promise (TryAcquire: false and no error when another holds the lock;
// the refusal reads only). Was broken: a refused mutex acquire now writes the
// waits key (SET), which a server over maxmemory with noeviction refuses
// inside the script: TryAcquire of a held lock fails with an OOM error,
// and a waiting Acquire stops at once instead of waiting for the release.
func TestRegressionRefusedAcquireUnderMaxmemory(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	c := srv.Client(t)
	name := redistest.Key(t)
	holder := newLock(t, c, name)
	rival := newLock(t, c, name)
	require.NoError(t, holder.Acquire(ctx))
	used := c.Info(ctx, "memory").Val()
	i := strings.Index(used, "used_memory:")
	require.GreaterOrEqual(t, i, 0)
	var n int64
	for _, ch := range used[i+len("used_memory:"):] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int64(ch-'0')
	}
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", strconv.FormatInt(n/2, 10)).Err())
	t.Cleanup(func() { _ = c.ConfigSet(ctx, "maxmemory", "0").Err() })

	waiter := newLock(t, c, name, redislock.WithWaitTimeout(300*time.Millisecond))
	start := time.Now()
	werr := waiter.Acquire(ctx)
	t.Logf("waiting Acquire: %v after %v", werr, time.Since(start))
	ok, err := rival.TryAcquire(ctx)
	require.NoError(t, err, "a refused acquire must not need memory")
	require.False(t, ok)
	require.ErrorIs(t, werr, redislock.ErrNotAcquired)
	require.False(t, errors.Is(werr, redislock.ErrNotAcquired) && strings.Contains(werr.Error(), "OOM"), "the waiter must wait, not stop on OOM: %v", werr)
	require.NoError(t, c.ConfigSet(ctx, "maxmemory", "0").Err())
	require.NoError(t, holder.Release(ctx))
}
