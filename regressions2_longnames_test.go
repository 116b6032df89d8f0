package redislock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Checked: names longer than the 128 bytes newNames keeps on the stack,
// unicode names, and names with a hash tag keep every derived key in the
// lock key's slot (a server in cluster mode refuses the scripts
// otherwise): acquire, a refused acquire (the waits key), a hand-off,
// release, and a fair lock.
func TestRegressionLongAndUnicodeNamesShareTheSlot(t *testing.T) {
	srv := redistest.Start(t, "--cluster-enabled", "yes")
	ctx := context.Background()
	c := srv.Client(t)
	require.NoError(t, c.Do(ctx, "cluster", "addslotsrange", 0, 16383).Err())
	eventually(t, 10*time.Second, func() bool {
		info, err := c.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	}, "cluster state ok")
	for _, name := range []string{
		strings.Repeat("ключ-🔒-", 20),
		strings.Repeat("x", 127),
		strings.Repeat("y", 128),
		strings.Repeat("z", 300) + "{tag}",
		"{" + strings.Repeat("é", 100) + "}rest",
		"日本語",
	} {
		a := newLock(t, c, name, redislock.WithKeyPrefix(strings.Repeat("p", 60)+":"))
		b := newLock(t, c, name, redislock.WithKeyPrefix(strings.Repeat("p", 60)+":"))
		require.NoError(t, a.Acquire(ctx), name)
		ok, err := b.TryAcquire(ctx)
		require.NoError(t, err, name)
		require.False(t, ok)
		done := make(chan error, 1)
		go func() { done <- b.Acquire(ctx) }()
		redislock.WaitQueued(t, b, 1)
		require.NoError(t, a.Release(ctx), name)
		require.NoError(t, <-done, name)
		assert.Equal(t, name, b.Name())
		require.NoError(t, b.Release(ctx), name)

		f := newLock(t, c, name, redislock.WithFair())
		require.NoError(t, f.Acquire(ctx), name)
		require.NoError(t, f.Release(ctx), name)
	}
}
