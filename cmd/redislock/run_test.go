//go:build linux

package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/history"
)

// lockName returns a lock name unique to the test.
func lockName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

// holdLock starts a redislock that holds name with a "hold" child and
// returns once the child runs.
func holdLock(t *testing.T, s *server, name string, args ...string) (*proc, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "holder")
	p := startRun(t, s, childEnv("hold", file), append(append([]string{"run"}, args...), append([]string{name}, self()...)...)...)
	waitLine(t, file, "start", 20*time.Second)
	return p, file
}

func TestRunExcludes(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "log")
	const runs = 4
	var ps []*proc
	for range runs {
		ps = append(ps, startRun(t, s, childEnv("append", file), append([]string{"run", lockName(t)}, self()...)...))
	}
	for _, p := range ps {
		require.Equal(t, 0, p.wait(t, 60*time.Second), p.stderr.String())
	}
	got := lines(t, file)
	require.Len(t, got, 2*runs, "every child records a start and an end")
	for i := 0; i < len(got); i += 2 {
		start, end := strings.Fields(got[i]), strings.Fields(got[i+1])
		assert.Equal(t, "start", start[0], "line %d: %q", i, got)
		assert.Equal(t, []string{"end", start[1]}, end, "a start must be followed by its own end: %q", got)
	}
}

func TestExitCodes(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	name := lockName(t)
	for _, tc := range []struct {
		what  string
		child []string
		args  []string
		want  int
	}{
		{"child exits 0", childEnv("exit", "", envCode+"=0"), nil, 0},
		{"child exits 3", childEnv("exit", "", envCode+"=3"), nil, 3},
		{"child exits 200", childEnv("exit", "", envCode+"=200"), nil, 200},
		{"child killed by SIGKILL", childEnv("signal", ""), nil, 128 + int(syscall.SIGKILL)},
		{"semaphore child exits 5", childEnv("exit", "", envCode+"=5"), []string{"--limit", "2"}, 5},
		{"fair lock child exits 4", childEnv("exit", "", envCode+"=4"), []string{"--fair"}, 4},
	} {
		args := append(append([]string{"run"}, tc.args...), name+strconv.Itoa(len(tc.args)))
		code, _, stderr := runWait(t, s, tc.child, append(args, self()...)...)
		assert.Equal(t, tc.want, code, "%s: %s", tc.what, stderr)
	}

	code, _, stderr := runWait(t, s, nil, "run", name, "--", filepath.Join(dir, "missing"))
	assert.Equal(t, exitNotFound, code, stderr)
	code, _, stderr = runWait(t, s, nil, "run", name, "--", dir) // a directory cannot be run
	assert.Equal(t, exitCannotExec, code, stderr)

	holder, _ := holdLock(t, s, name)
	code, _, stderr = runWait(t, s, childEnv("exit", ""), append([]string{"run", "--wait", "0", name}, self()...)...)
	assert.Equal(t, exitConflict, code, stderr)
	assert.Empty(t, stderr, "a conflict is silent without --verbose")
	code, _, stderr = runWait(t, s, childEnv("exit", ""), append([]string{"run", "--wait", "0", "--conflict-exit-code", "9", "--verbose", name}, self()...)...)
	assert.Equal(t, 9, code, stderr)
	assert.Contains(t, stderr, "held by another owner")

	s.Do(t, "SET", "lock:"+name+"-string", "x")
	code, _, stderr = runWait(t, s, childEnv("exit", ""), append([]string{"run", name + "-string"}, self()...)...)
	assert.Equal(t, exitDataErr, code, stderr)

	require.NoError(t, holder.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), holder.wait(t, 20*time.Second), holder.stderr.String())
}

func TestWaitZero(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	holdLock(t, s, name)

	start := time.Now()
	code, _, stderr := runWait(t, s, childEnv("exit", ""), append([]string{"run", "--wait", "0", name}, self()...)...)
	took := time.Since(start)
	assert.Equal(t, exitConflict, code, stderr)
	// One attempt: no waiting for the 30 s lease; the bound leaves room for
	// process start-up on a loaded machine.
	assert.Less(t, took, 3*time.Second)

	start = time.Now()
	code, _, stderr = runWait(t, s, childEnv("exit", ""), append([]string{"run", "--wait", "500ms", name}, self()...)...)
	assert.Equal(t, exitConflict, code, stderr)
	assert.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "--wait 500ms waits that long")
}

func TestWaitInterrupted(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	holdLock(t, s, name)
	file := filepath.Join(t.TempDir(), "waiter")
	p := startRun(t, s, childEnv("hold", file), append([]string{"run", name}, self()...)...)
	// It is waiting once its client subscribed to the lock's channel.
	require.Eventually(t, func() bool {
		ch, _ := s.Do(t, "PUBSUB", "CHANNELS", "redislock:*").StringSlice()
		return len(ch) > 0
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, 128+int(syscall.SIGINT), p.wait(t, 10*time.Second), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "not acquired: interrupted by interrupt")
	assert.Empty(t, lines(t, file), "the child never ran")
}

func TestGraceKillsGroup(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	file := filepath.Join(t.TempDir(), "child")
	const grace = time.Second
	// The child ignores SIGTERM, and so does its grandchild.
	p := startRun(t, s, childEnv("hold", file, envNoTerm+"=1", envGrand+"=1"),
		append([]string{"run", "--ttl", "3s", "--grace", grace.String(), name}, self()...)...)
	waitLine(t, file, "start", 20*time.Second)
	gc := waitLine(t, file+".grandchild", "start", 20*time.Second)
	gcPid := int(atoi64(t, gc[2]))
	t.Cleanup(func() { _ = syscall.Kill(gcPid, syscall.SIGKILL) })

	s.Do(t, "DEL", "lock:"+name)
	term := waitLine(t, file, "sig terminated", 10*time.Second)
	waitLine(t, file+".grandchild", "sig terminated", 10*time.Second)
	code := p.wait(t, 20*time.Second)
	assert.Equal(t, exitLost, code, p.stderr.String())
	killedAfter := time.Duration(history.Now() - atoi64(t, term[2]))
	assert.GreaterOrEqual(t, killedAfter, grace, "SIGKILL comes --grace after SIGTERM")
	assert.ErrorIs(t, syscall.Kill(gcPid, 0), syscall.ESRCH, "the grandchild is killed with the group")
}

func TestLossDeletedKey(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	file := filepath.Join(t.TempDir(), "child")
	const ttl, heartbeat = 3 * time.Second, time.Second // the library's heartbeat: TTL/3
	p := startRun(t, s, childEnv("hold", file),
		append([]string{"run", "--ttl", ttl.String(), "--lost-exit-code", "99", name}, self()...)...)
	waitLine(t, file, "start", 20*time.Second)

	deleted := history.Now()
	s.Do(t, "DEL", "lock:"+name)
	term := waitLine(t, file, "sig terminated", 10*time.Second)
	assert.Equal(t, 99, p.wait(t, 20*time.Second), p.stderr.String())
	after := time.Duration(atoi64(t, term[2]) - deleted)
	t.Logf("SIGTERM %v after the key was deleted", after)
	// Within one heartbeat, plus a margin for a loaded machine.
	assert.Less(t, after, heartbeat+500*time.Millisecond)
	assert.Contains(t, p.stderr.String(), "lock lost: the key is gone or held by another owner")
	assert.Equal(t, 1, strings.Count(p.stderr.String(), "\n"), "one line: %q", p.stderr.String())
}

func TestLossServerPaused(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first"), filepath.Join(dir, "second")
	const ttl = time.Second
	p1 := startRun(t, s, childEnv("hold", first), append([]string{"run", "--ttl", ttl.String(), name}, self()...)...)
	waitLine(t, first, "start", 20*time.Second)

	s.Pause(t)
	pausedAt := time.Now()
	paused := true
	t.Cleanup(func() {
		if paused {
			s.Resume(t)
		}
	})
	// The holder gives up at its validity deadline, with the server still
	// stopped: nobody else can have the lock yet.
	died := waitLine(t, first, "exit", 10*time.Second)
	p2 := startRun(t, s, childEnv("hold", second), append([]string{"run", "--wait", "30s", name}, self()...)...)
	// Keep the server stopped past the TTL, so that the key has expired on
	// the server's clock when it resumes.
	time.Sleep(ttl + 200*time.Millisecond - time.Since(pausedAt))
	s.Resume(t)
	paused = false
	start := waitLine(t, second, "start", 30*time.Second)
	assert.Less(t, atoi64(t, died[1]), atoi64(t, start[1]), "the first child died before the second started")
	assert.Equal(t, exitLost, p1.wait(t, 20*time.Second), p1.stderr.String())
	assert.Contains(t, p1.stderr.String(), "lock lost: the lease ran out")

	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), p2.wait(t, 20*time.Second))
}

func TestSignalsForwarded(t *testing.T) {
	s := startServer(t)
	p, file := holdLock(t, s, lockName(t))
	start := waitLine(t, file, "start", time.Second)
	assert.Equal(t, start[2], start[3], "the child leads a process group of its own")
	assert.NotEqual(t, strconv.Itoa(syscall.Getpgrp()), start[3])

	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM} {
		require.NoError(t, p.cmd.Process.Signal(sig))
		waitLine(t, file, "sig "+sig.String(), 10*time.Second)
	}
	assert.Equal(t, 128+int(syscall.SIGTERM), p.wait(t, 20*time.Second), p.stderr.String())
	// Released after the child exited: the lock is free at once.
	code, _, stderr := runWait(t, s, childEnv("exit", ""), append([]string{"run", "--wait", "0", lockName(t)}, self()...)...)
	assert.Equal(t, 0, code, stderr)
}

func TestEnvironment(t *testing.T) {
	s := startServer(t)
	name := lockName(t)
	var tokens []int64
	for i := range 3 {
		file := filepath.Join(t.TempDir(), "env")
		args := []string{"run", name}
		if i == 2 {
			args = []string{"run", "--limit", "3", name + "-sem"}
		}
		code, _, stderr := runWait(t, s, childEnv("env", file), append(args, self()...)...)
		require.Equal(t, 0, code, stderr)
		env := map[string]string{}
		for _, l := range lines(t, file) {
			k, v, _ := strings.Cut(l, "=")
			env[k] = v
		}
		assert.Equal(t, args[len(args)-1], env["REDISLOCK_NAME"])
		assert.Equal(t, "lock:"+args[len(args)-1], env["REDISLOCK_KEY"])
		assert.NotEmpty(t, env["REDISLOCK_OWNER"])
		tokens = append(tokens, atoi64(t, env["REDISLOCK_TOKEN"]))
	}
	assert.Less(t, tokens[0], tokens[1], "every acquisition gets a larger token")
	assert.Positive(t, tokens[2])

	file := filepath.Join(t.TempDir(), "env")
	code, _, stderr := runWait(t, s, childEnv("env", file), append([]string{"run", "--prefix", "app/", name}, self()...)...)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, lines(t, file), "REDISLOCK_KEY=app/"+name)
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nosuch"},
		{"run"},
		{"run", "x"},
		{"run", "x", "true"},
		{"run", "x", "--wait", "0", "--", "true"},
		{"run", "x", "--"},
		{"run", "", "--", "true"},
		{"run", "--wait", "soon", "x", "--", "true"},
		{"run", "--wait", "-1s", "x", "--", "true"},
		{"run", "--ttl", "1ms", "x", "--", "true"},
		{"run", "--limit", "0", "x", "--", "true"},
		{"run", "--limit", "2", "--fair", "x", "--", "true"},
		{"run", "--lost-exit-code", "256", "x", "--", "true"},
		{"run", "--replica-timeout", "1s", "x", "--", "true"},
		{"run", "--nosuch", "x", "--", "true"},
		{"run", "--url", "http://x", "x", "--", "true"},
		{"run", "--sentinel", "127.0.0.1:1", "x", "--", "true"},
		{"run", "--cluster", "a,,b", "x", "--", "true"},
		{"status"},
		{"status", "--prefix", "", "x"},
		{"version", "x"},
	} {
		code, stdout, stderr := runWait(t, nil, nil, args...)
		assert.Equal(t, exitUsage, code, "%q: %s", args, stderr)
		assert.Empty(t, stdout, "%q", args)
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "%q: one line: %q", args, stderr)
		assert.Contains(t, stderr, "--help", "%q", args)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"run", "--help"}, {"status", "-h"}, {"help", "run"}} {
		code, stdout, stderr := runWait(t, nil, nil, args...)
		assert.Equal(t, 0, code, "%q: %s", args, stderr)
		assert.Contains(t, stdout, "Usage", "%q", args)
	}
	_, stdout, _ := runWait(t, nil, nil, "--help")
	for _, code := range []string{"64", "69", "75", "76", "128+N"} {
		assert.Contains(t, stdout, code, "the help documents exit code %s", code)
	}
	code, stdout, _ := runWait(t, nil, nil, "version")
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "redislock "), stdout)
}

func TestUnreachable(t *testing.T) {
	s := startServer(t)
	s.Kill(t) // nothing listens on its port now
	for _, args := range [][]string{
		append([]string{"run", "x"}, self()...),
		append([]string{"run", "--wait", "0", "x"}, self()...),
		{"status", "x"},
	} {
		code, _, stderr := runWait(t, s, childEnv("exit", ""), args...)
		assert.Equal(t, exitUnavailable, code, "%q: %s", args, stderr)
		assert.Contains(t, stderr, "connection refused", "%q", args)
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "%q: one line: %q", args, stderr)
	}
}

// TestIgnoredSignalStaysIgnored: under nohup (SIGHUP ignored at start),
// redislock must neither die of SIGHUP nor pass it on to its child.
func TestIgnoredSignalStaysIgnored(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "child")
	shell := `trap "" HUP; exec "$0" "$@"`
	p := startProg(t, s, childEnv("hold", file), "/bin/sh", append([]string{"-c", shell, bin, "run", lockName(t)}, self()...)...)
	waitLine(t, file, "start", 20*time.Second)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	waitLine(t, file, "sig terminated", 10*time.Second)
	assert.Equal(t, 128+int(syscall.SIGTERM), p.wait(t, 20*time.Second), p.stderr.String())
	assert.NotContains(t, strings.Join(lines(t, file), "\n"), "sig hangup", "an ignored SIGHUP is not forwarded")
}

// TestTransientOutageSurvived: a server that stops answering for less than
// the lease costs the child nothing.
func TestTransientOutageSurvived(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "child")
	const ttl = 3 * time.Second // heartbeat every second, validity 2.97 s
	p := startRun(t, s, childEnv("hold", file), append([]string{"run", "--ttl", ttl.String(), lockName(t)}, self()...)...)
	waitLine(t, file, "start", 20*time.Second)

	s.Pause(t)
	time.Sleep(1200 * time.Millisecond) // the outage itself: a renewal is due meanwhile
	s.Resume(t)
	// Two more heartbeats, and past the validity deadline of the renewal
	// before the outage: any loss would have been seen by now.
	time.Sleep(2 * ttl / 3 * 2)
	assert.Equal(t, []string{"start"}, firstFields(lines(t, file)), "the child got no signal")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	assert.Equal(t, 128+int(syscall.SIGTERM), p.wait(t, 20*time.Second), p.stderr.String())
	assert.Empty(t, p.stderr.String())
}

// firstFields returns the first field of each line.
func firstFields(ls []string) []string {
	var out []string
	for _, l := range ls {
		out = append(out, strings.Fields(l)[0])
	}
	return out
}
