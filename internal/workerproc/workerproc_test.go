package workerproc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/workerproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type config struct {
	Out   string
	N     int
	Hang  bool
	Fail  bool
	Extra string
}

// TestWorker is the worker's code; in the parent it does nothing.
func TestWorker(t *testing.T) {
	cfg, ok := workerproc.Config[config](t)
	if !ok {
		return
	}
	if cfg.Fail {
		t.Fatal("told to fail")
	}
	if cfg.Hang {
		time.Sleep(time.Hour)
	}
	require.NoError(t, os.WriteFile(cfg.Out, []byte(strconv.Itoa(cfg.N*cfg.N)), 0o644))
}

func TestStartWait(t *testing.T) {
	dir := t.TempDir()
	procs := workerproc.Start(t, "TestWorker", 3, func(i int) any {
		return config{Out: filepath.Join(dir, fmt.Sprint(i)), N: i + 1}
	})
	for i, p := range procs {
		require.NoError(t, p.Wait(time.Minute))
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa((i+1)*(i+1)), string(b))
	}
}

func TestWaitReportsFailure(t *testing.T) {
	p := workerproc.Start(t, "TestWorker", 1, func(int) any { return config{Fail: true} })[0]
	err := p.Wait(time.Minute)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "told to fail")
}

func TestWaitKillsHungWorker(t *testing.T) {
	p := workerproc.Start(t, "TestWorker", 1, func(int) any { return config{Hang: true} })[0]
	start := time.Now()
	err := p.Wait(200 * time.Millisecond)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "killed")
	assert.Less(t, time.Since(start), 30*time.Second)
}
