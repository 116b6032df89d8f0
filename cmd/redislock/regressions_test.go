//go:build linux

package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// README, flags of run: "--wait DURATION: how long to wait for the lock;
// 0: one attempt". With the server not answering (stopped), a run with
// --wait 500ms takes several seconds: the command's client is made without
// ContextTimeoutEnabled (flags.go, connFlags.client), which the library's
// README asks for so that context deadlines bound socket I/O, so the wait's
// deadline does not bound the acquire request (go-redis waits its 3 s
// ReadTimeout per try instead).
func TestRegressionWaitNotBoundedWhenServerStopped(t *testing.T) {
	s := startServer(t)
	file := filepath.Join(t.TempDir(), "child")
	// Warm nothing: the run's first request meets a stopped server.
	s.Pause(t)
	defer s.Resume(t)
	start := time.Now()
	p := startRun(t, s, childEnv("exit", file), append([]string{"run", "--wait", "500ms", lockName(t)}, self()...)...)
	code := p.wait(t, 30*time.Second)
	took := time.Since(start)
	t.Logf("exit %d after %v; stderr: %s", code, took, p.stderr.String())
	assert.Less(t, took, 2*time.Second, "--wait 500ms, yet the run took %v (exit %d)", took, code)
}
