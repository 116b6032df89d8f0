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

// formatLock speaks the Python original's wire format — the hash
// lock:<name> with fields owner and count, PEXPIRE in ms — through these two
// scripts, written in Go for this test from the original's description (they
// publish nothing on release). It checks the format where the original
// itself cannot run; compat_python_test.go runs the original.
type formatLock struct {
	c     *redis.Client
	key   string
	owner string
	ttlMs int64
}

var (
	formatAcquire = redis.NewScript(`
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('hset', KEYS[1], 'owner', ARGV[1])
  redis.call('hset', KEYS[1], 'count', 1)
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('hget', KEYS[1], 'owner') == ARGV[1] then
  redis.call('hincrby', KEYS[1], 'count', 1)
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
return 0`)
	formatRelease = redis.NewScript(`
if redis.call('hget', KEYS[1], 'owner') ~= ARGV[1] then
  return 0
end
if redis.call('hincrby', KEYS[1], 'count', -1) <= 0 then
  redis.call('del', KEYS[1])
end
return 1`)
)

func (p *formatLock) acquire(ctx context.Context) (bool, error) {
	n, err := formatAcquire.Run(ctx, p.c, []string{p.key}, p.owner, p.ttlMs).Int()
	return n == 1, err
}

func (p *formatLock) release(ctx context.Context) (bool, error) {
	n, err := formatRelease.Run(ctx, p.c, []string{p.key}, p.owner).Int()
	return n == 1, err
}

func TestPythonOriginalWireFormat(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	py := &formatLock{c: c, key: "lock:" + name, owner: "python-worker-1", ttlMs: 10_000}
	gl := newLock(t, c, name, redislock.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))

	// Python holds (twice, reentrant): Go is excluded, and cannot release it.
	for i := 0; i < 2; i++ {
		ok, err := py.acquire(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	ok, err := gl.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, gl.Release(ctx), redislock.ErrNotHeld)

	// Go waits; Python's releases publish nothing, and the waiter still
	// takes over after the last one.
	acquired := make(chan error, 1)
	go func() { acquired <- gl.Acquire(ctx) }()
	for i := 0; i < 2; i++ {
		ok, err := py.release(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	select {
	case err := <-acquired:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Go waiter did not take over after the Python release")
	}
	assert.Equal(t, gl.Owner(), c.HGet(ctx, py.key, "owner").Val())
	assert.Equal(t, "1", c.HGet(ctx, py.key, "count").Val())

	// Go holds (reentrant): Python is excluded, and cannot release it.
	require.NoError(t, gl.Acquire(ctx))
	assert.Equal(t, "2", c.HGet(ctx, py.key, "count").Val())
	ok, err = py.acquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = py.release(ctx)
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, gl.Release(ctx))
	require.NoError(t, gl.Release(ctx))
	ok, err = py.acquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok, "Python takes over after Go's last release")
	ok, err = py.release(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Zero(t, c.Exists(ctx, py.key).Val())
}
