//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/clustertest"
)

// TestTopologies runs and inspects a lock through --cluster and through
// --sentinel --master, with --min-replicas where a replica exists.
func TestTopologies(t *testing.T) {
	cluster := clustertest.StartCluster(t, 3, 0)
	sentinel := clustertest.StartSentinel(t, 1, 1)
	for _, tc := range []struct {
		what string
		conn []string // connection flags
		lock []string // run's lock flags
	}{
		{"cluster", []string{"--cluster", strings.Join(cluster.Addrs(), ",")}, nil},
		{"sentinel", []string{"--sentinel", strings.Join(sentinel.SentinelAddrs(), ","), "--master", clustertest.MasterName}, nil},
		{"sentinel, min replicas", []string{"--sentinel", strings.Join(sentinel.SentinelAddrs(), ","), "--master", clustertest.MasterName},
			[]string{"--min-replicas", "1", "--replica-timeout", "1s"}},
	} {
		name := lockName(t) + "-" + strings.ReplaceAll(tc.what, " ", "")
		file := filepath.Join(t.TempDir(), "child")
		args := append(append(append([]string{"run"}, tc.conn...), tc.lock...), name)
		holder := startRun(t, nil, childEnv("hold", file), append(args, self()...)...)
		waitLine(t, file, "start", 20*time.Second)
		conn := tc.conn
		code, stdout, stderr := runWait(t, nil, nil, append(append([]string{"status"}, conn...), name)...)
		assert.Equal(t, 1, code, "%s: %s", tc.what, stderr)
		assert.Contains(t, stdout, name+": held by ", tc.what)
		code, _, stderr = runWait(t, nil, childEnv("exit", ""), append(append(append([]string{"run"}, conn...), "--wait", "0", name), self()...)...)
		assert.Equal(t, exitConflict, code, "%s: %s", tc.what, stderr)

		require.NoError(t, holder.cmd.Process.Signal(syscall.SIGTERM))
		assert.Equal(t, 128+int(syscall.SIGTERM), holder.wait(t, 20*time.Second), "%s: %s", tc.what, holder.stderr.String())
		code, stdout, _ = runWait(t, nil, nil, append(append([]string{"status"}, conn...), name)...)
		assert.Equal(t, 0, code, tc.what)
		assert.Equal(t, name+": free\n", stdout, tc.what)
	}

	// One replica cannot acknowledge for two: the acquire is undone.
	code, _, stderr := runWait(t, nil, childEnv("exit", ""), append([]string{"run", "--sentinel", strings.Join(sentinel.SentinelAddrs(), ","),
		"--master", clustertest.MasterName, "--min-replicas", "2", "--replica-timeout", "200ms", lockName(t)}, self()...)...)
	assert.Equal(t, exitUnavailable, code, stderr)
	assert.Contains(t, stderr, "1 of 2 replicas acknowledged")
}
