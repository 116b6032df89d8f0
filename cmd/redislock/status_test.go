//go:build linux

package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statusJSON runs status --json and decodes its lines.
func statusJSON(t *testing.T, s *server, names ...string) (int, []lockStatus) {
	t.Helper()
	code, stdout, stderr := runWait(t, s, nil, append([]string{"status", "--json"}, names...)...)
	require.Empty(t, stderr)
	var out []lockStatus
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var st lockStatus
		require.NoError(t, json.Unmarshal([]byte(l), &st), l)
		out = append(out, st)
	}
	return code, out
}

func TestStatus(t *testing.T) {
	s := startServer(t)
	name := lockName(t)

	code, stdout, stderr := runWait(t, s, nil, "status", name)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, name+": free\n", stdout)
	code, sts := statusJSON(t, s, name)
	assert.Equal(t, 0, code)
	assert.Equal(t, []lockStatus{{Name: name, Key: "lock:" + name, State: "free", Waiters: -1, Holders: []holder{}}}, sts)

	holder, _ := holdLock(t, s, name, "--ttl", "20s")
	code, stdout, _ = runWait(t, s, nil, "status", name, name+"-free")
	assert.Equal(t, 1, code, "a held lock: exit 1")
	got := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, got, 2, stdout)
	assert.Regexp(t, `^`+name+`: held by \S+ \(count 1, lease 1\d(\.\d+)?s left, token \d+\)$`, got[0])
	assert.Equal(t, name+"-free: free", got[1])

	code, sts = statusJSON(t, s, name)
	assert.Equal(t, 1, code)
	require.Len(t, sts, 1)
	st := sts[0]
	fields, err := s.Client(t).HGetAll(t.Context(), "lock:"+name).Result()
	require.NoError(t, err)
	assert.Equal(t, "held", st.State)
	assert.Equal(t, "mutex", st.Kind)
	assert.Equal(t, fields["owner"], st.Owner)
	assert.Equal(t, int64(1), st.Count)
	assert.Equal(t, fields["token"], strconv.FormatInt(st.Token, 10))
	assert.InDelta(t, 20000, st.LeaseMs, 10000)

	require.NoError(t, holder.cmd.Process.Signal(syscall.SIGTERM))
	holder.wait(t, 20*time.Second)
	code, _, _ = runWait(t, s, nil, "status", name)
	assert.Equal(t, 0, code, "free again after the run")

	// A semaphore: the permit of a running child, with its token.
	semFile := filepath.Join(t.TempDir(), "sem")
	sem := startRun(t, s, childEnv("hold", semFile), append([]string{"run", "--limit", "3", name + "-sem"}, self()...)...)
	waitLine(t, semFile, "start", 20*time.Second)
	code, sts = statusJSON(t, s, name+"-sem")
	assert.Equal(t, 1, code)
	require.Len(t, sts, 1)
	st = sts[0]
	assert.Equal(t, "semaphore", st.Kind)
	assert.Equal(t, "held", st.State)
	assert.Equal(t, int64(3), st.Limit)
	assert.Equal(t, int64(1), st.Count)
	require.Len(t, st.Holders, 1)
	assert.Equal(t, "permit", st.Holders[0].Role)
	assert.Positive(t, st.Holders[0].Token)
	assert.InDelta(t, 30000, st.Holders[0].LeaseMs, 10000)
	code, stdout, _ = runWait(t, s, nil, "status", name+"-sem")
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, name+"-sem: semaphore, 1 of 3 permits held\n  permit "+st.Holders[0].Owner)
	require.NoError(t, sem.cmd.Process.Signal(syscall.SIGTERM))
	sem.wait(t, 20*time.Second)
	code, sts = statusJSON(t, s, name+"-sem")
	assert.Equal(t, 0, code)
	assert.Equal(t, "free", sts[0].State)

	// A key that is no lock.
	s.Do(t, "SET", "lock:"+name+"-str", "x")
	code, stdout, _ = runWait(t, s, nil, "status", name+"-str")
	assert.Equal(t, 1, code)
	assert.Equal(t, name+"-str: not a lock: key lock:"+name+"-str holds a string\n", stdout)
}
