package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/redistest"
)

func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// noRetry makes a client fail fast: no retries, and ctx deadlines bound reads.
func noRetry(o *redis.Options) {
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
}

// isTimeout reports whether err is a deadline error, as go-redis returns
// either the context's error or the net package's.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func ping(c *redis.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

func TestAddrShared(t *testing.T) {
	a := redistest.Addr(t)
	assert.Equal(t, a, redistest.Addr(t), "Addr must return the same server every time")
	if env := os.Getenv(redistest.EnvAddr); env != "" {
		assert.Equal(t, env, a)
	}
	c := redistest.Client(t)
	require.NoError(t, ping(c, 5*time.Second))

	key := redistest.Key(t)
	require.NoError(t, c.Set(t.Context(), key, "v", time.Minute).Err())
	got, err := redistest.Client(t).Get(t.Context(), key).Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got, "two clients must see the same server")
}

func TestAddrFromEnv(t *testing.T) {
	t.Setenv(redistest.EnvAddr, "127.0.0.1:1")
	assert.Equal(t, "127.0.0.1:1", redistest.Addr(t))
}

func TestKey(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			for range 100 {
				k := redistest.Key(t)
				assert.True(t, strings.HasPrefix(k, "redistest:"+t.Name()+":"), k)
				mu.Lock()
				assert.False(t, seen[k], "duplicate key %q", k)
				seen[k] = true
				mu.Unlock()
			}
		})
	}
}

func TestStartConfig(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "--maxmemory", "10mb")
	host, _, err := net.SplitHostPort(s.Addr())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)

	c := s.Client(t)
	for param, want := range map[string]string{
		"maxmemory":  "10485760",
		"save":       "",
		"appendonly": "no",
	} {
		got, err := c.ConfigGet(t.Context(), param).Result()
		require.NoError(t, err)
		assert.Equal(t, want, got[param], param)
	}
	require.NoError(t, c.Do(t.Context(), "DEBUG", "SLEEP", "0").Err(), "DEBUG must be enabled")
}

func TestStartIsPrivate(t *testing.T) {
	t.Parallel()
	a, b := redistest.Start(t), redistest.Start(t)
	assert.NotEqual(t, a.Addr(), b.Addr())
	ca, cb := a.Client(t), b.Client(t)
	require.NoError(t, ca.Set(t.Context(), "k", "a", 0).Err())
	assert.ErrorIs(t, cb.Get(t.Context(), "k").Err(), redis.Nil)
}

func TestRestartLosesData(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	addr := s.Addr()
	c := s.Client(t)
	require.NoError(t, c.Set(t.Context(), "k", "v", 0).Err())

	s.Restart(t)
	assert.Equal(t, addr, s.Addr())
	assert.ErrorIs(t, c.Get(t.Context(), "k").Err(), redis.Nil, "the restarted server must have no data")
}

func TestKillRestart(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t, noRetry)
	require.NoError(t, ping(c, 5*time.Second))

	s.Kill(t)
	s.Kill(t) // idempotent
	assert.Error(t, ping(c, time.Second), "a killed server must not answer")

	s.Restart(t)
	require.NoError(t, ping(c, 5*time.Second))
}

func TestRestartWaitsForPort(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	s.Kill(t)
	ln, err := net.Listen("tcp", s.Addr())
	require.NoError(t, err, "taking the killed server's port")
	timer := time.AfterFunc(300*time.Millisecond, func() { ln.Close() })
	defer timer.Stop()

	s.Restart(t) // fails to bind until ln is closed, then succeeds
	require.NoError(t, ping(s.Client(t), 5*time.Second))
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	c := s.Client(t, noRetry)
	require.NoError(t, ping(c, 5*time.Second))

	s.Pause(t)
	start := time.Now()
	err := ping(c, 200*time.Millisecond)
	assert.True(t, isTimeout(err), "a paused server must not answer; got %v", err)
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)

	s.Resume(t)
	s.Resume(t) // no-op on a running server
	require.NoError(t, ping(c, 5*time.Second))
}

func TestCleanupKillsPausedServer(t *testing.T) {
	t.Parallel()
	t.Run("paused", func(t *testing.T) {
		s := redistest.Start(t)
		s.Pause(t)
		// Cleanup must kill the stopped process and wait for it.
	})
}

// fakeTB records Fatal and Skip instead of reporting them. Everything
// else goes to the embedded real test.
type fakeTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatal(args ...any) {
	f.failed, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any) {
	f.skipped, f.msg = true, fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) { f.Skip(fmt.Sprintf(format, args...)) }

// runFake runs fn with a fakeTB on a goroutine and waits for it to return
// or exit through Fatal or Skip.
func runFake(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestStartFailureReportsLog(t *testing.T) {
	t.Parallel()
	f := runFake(t, func(tb testing.TB) { redistest.Start(tb, "--no-such-directive", "x") })
	require.True(t, f.failed, "Start with a bad directive must fail the test")
	assert.Contains(t, f.msg, "no-such-directive", "the failure must include the server's output")
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(redistest.EnvAddr, "")

	for _, tc := range []struct {
		name string
		fn   func(testing.TB)
	}{
		{"Start", func(tb testing.TB) { redistest.Start(tb) }},
		{"Addr", func(tb testing.TB) { redistest.Addr(tb) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(redistest.EnvRequire, "")
			f := runFake(t, tc.fn)
			assert.True(t, f.skipped, "must skip without redis-server")
			assert.Contains(t, f.msg, "redis-server not found in PATH")

			t.Setenv(redistest.EnvRequire, "1")
			f = runFake(t, tc.fn)
			assert.True(t, f.failed, "must fail without redis-server when %s=1", redistest.EnvRequire)
			assert.Contains(t, f.msg, "redis-server not found in PATH")
		})
	}
}
