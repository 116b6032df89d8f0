//go:build linux

package main

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A --fair run interrupted while it waits exits 128+signal and leaves the
// queue at once; the holder's command is untouched.
func TestFairWaiterSignalLeavesQueue(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	c := s.Client(t)
	name := lockName(t)
	holder, _ := holdLock(t, s, name, "--fair")
	waiter := startRun(t, s, childEnv("exit", t.TempDir()+"/w"), append([]string{"run", "--fair", name}, self()...)...)
	queued := func() int {
		n := 0
		for _, k := range c.Keys(ctx, "redislock:*:queue:*").Val() {
			n += int(c.ZCard(ctx, k).Val())
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for queued() != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, 1, queued(), "waiter queued")
	require.NoError(t, waiter.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), waiter.wait(t, 10*time.Second), waiter.stderr.String())
	assert.Equal(t, 0, queued(), "the interrupted waiter left the queue")
	require.NoError(t, holder.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), holder.wait(t, 20*time.Second), holder.stderr.String())
}
