package redistest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

func TestDebugSleep(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t, noRetry)
	require.NoError(t, ping(c, 5*time.Second))
	start := time.Now()
	wait := s.DebugSleep(t, 500*time.Millisecond)
	// The sleep starts when the server reads the command: soon.
	assert.Eventually(t, func() bool { return isTimeout(ping(c, 50*time.Millisecond)) }, 400*time.Millisecond, time.Millisecond,
		"a sleeping server must not answer")
	wait()
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond)
	require.NoError(t, ping(c, 5*time.Second))
}

func TestClientPause(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t, noRetry)
	require.NoError(t, ping(c, 5*time.Second))

	start := time.Now()
	s.ClientPause(t, 300*time.Millisecond, redistest.PauseAll)
	assert.True(t, isTimeout(ping(c, 100*time.Millisecond)), "a paused server must not answer")
	require.NoError(t, ping(c, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	s.ClientPause(t, 300*time.Millisecond, redistest.PauseWrite)
	require.NoError(t, ping(c, time.Second), "reads go on in WRITE mode")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err := c.Set(ctx, "k", "v", 0).Err()
	assert.True(t, isTimeout(err), "writes wait in WRITE mode; got %v", err)
}

func TestClientCount(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	assert.Zero(t, s.ClientCount(t))
	c := s.Client(t)
	require.NoError(t, ping(c, 5*time.Second))
	assert.Equal(t, 1, s.ClientCount(t), s.ClientList(t))
	require.NoError(t, c.Close())
	assert.Eventually(t, func() bool { return s.ClientCount(t) == 0 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, "OK", s.Do(t, "FLUSHALL").Val())
}
