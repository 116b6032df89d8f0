package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/faketb"
	"github.com/redislock/redislock/internal/redisproc"
	"github.com/redislock/redislock/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(sharedServerM{m}) }

// sharedServerM runs the tests through redistest.Main, which stops the
// shared server before goleak looks for goroutines left running.
type sharedServerM struct{ m *testing.M }

func (s sharedServerM) Run() int { return redistest.Main(s.m) }

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

// TestWaiterGoroutineName checks the name by which leak checks (accountFor
// in the root package's reliability_test.go) tell a server's waiter
// goroutine. Not parallel: goleak must see no other test's goroutines.
func TestWaiterGoroutineName(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	s := redistest.Start(t)
	s.Restart(t)
	require.Error(t, goleak.Find(ignore), "the server's waiter goroutine must be running")
	assert.NoError(t, goleak.Find(ignore, goleak.IgnoreAnyFunction(redisproc.WaiterFunction)))
}

func TestStartFailureReportsLog(t *testing.T) {
	t.Parallel()
	f := faketb.Run(t, func(tb testing.TB) { redistest.Start(tb, "--no-such-directive", "x") })
	require.True(t, f.Failed, "Start with a bad directive must fail the test")
	assert.Contains(t, f.Msg, "no-such-directive", "the failure must include the server's output")
}

// TestMissingBinary checks that Start and Addr go through
// redisproc.RequireBinaries, whose tests cover skipping and failing.
func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(redistest.EnvAddr, "")
	t.Setenv(redistest.EnvRequire, "1")
	for name, fn := range map[string]func(testing.TB){
		"Start": func(tb testing.TB) { redistest.Start(tb) },
		"Addr":  func(tb testing.TB) { redistest.Addr(tb) },
	} {
		f := faketb.Run(t, fn)
		assert.True(t, f.Failed, "%s must fail without redis-server when %s=1", name, redistest.EnvRequire)
		assert.Contains(t, f.Msg, redisproc.MustSelect(t).Server+" not found in PATH", name)
	}
}
