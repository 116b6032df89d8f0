package redisproc_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/redisproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverSpec describes the selected server (redis-server by default) in a directory from t.TempDir.
func serverSpec(t *testing.T, extra ...string) redisproc.Spec {
	p := redisproc.MustSelect(t)
	redisproc.RequireBinaries(t, p.Hint(), p.Server)
	dir := t.TempDir()
	return redisproc.Spec{
		Dir: dir,
		Command: func(port int) (string, []string, error) {
			return p.Server, append(redisproc.ServerArgs(dir, port), extra...), nil
		},
	}
}

func TestStartFreePort(t *testing.T) {
	t.Parallel()
	spec := serverSpec(t, "--maxmemory", "10mb")
	p, err := redisproc.StartFreePort(spec, 3, redisproc.FreePort)
	require.NoError(t, err)
	t.Cleanup(p.Kill)
	assert.Equal(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())), p.Addr())

	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
	defer c.Close()
	got, err := c.ConfigGet(t.Context(), "maxmemory").Result()
	require.NoError(t, err)
	assert.Equal(t, "10485760", got["maxmemory"])
	assert.FileExists(t, filepath.Join(spec.Dir, redisproc.LogFile))
	assert.FileExists(t, filepath.Join(spec.Dir, redisproc.OutFile))

	p.Kill()
	p.Kill() // again: does nothing
	assert.ErrorContains(t, p.Signal(syscall.SIGCONT), "has exited")
}

func TestPortInUse(t *testing.T) {
	t.Parallel()
	spec := serverSpec(t)
	// Another process's listener, which hangs up on every connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer func() {
		ln.Close()
		<-accepting
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	tried := 0
	_, err = redisproc.StartFreePort(spec, 2, func() (int, error) {
		tried++
		return port, nil
	})
	assert.ErrorIs(t, err, redisproc.ErrPortInUse)
	assert.ErrorContains(t, err, "Address already in use", "the error must quote the log")
	assert.Equal(t, 2, tried, "each attempt must pick a port")
}

func TestStartError(t *testing.T) {
	t.Parallel()
	spec := serverSpec(t, "--no-such-directive", "x")
	port, err := redisproc.FreePort()
	require.NoError(t, err)
	_, err = redisproc.StartPort(spec, port) // fails before binding: no retry
	require.Error(t, err)
	assert.NotErrorIs(t, err, redisproc.ErrPortInUse)
	assert.ErrorContains(t, err, "no-such-directive", "the error must quote the process's output")

	spec.Command = func(int) (string, []string, error) { return filepath.Join(spec.Dir, "missing"), nil, nil }
	_, err = redisproc.StartPort(spec, port)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestSignalWaitStopped(t *testing.T) {
	t.Parallel()
	p, err := redisproc.StartFreePort(serverSpec(t), 3, redisproc.FreePort)
	require.NoError(t, err)
	defer p.Kill() // works on a stopped process too
	require.NoError(t, p.Signal(syscall.SIGSTOP))
	require.NoError(t, p.WaitStopped())
}
