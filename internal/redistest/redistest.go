// Package redistest runs redis-server processes for tests.
//
// A test binary that uses [Addr] or [Client] must call [Main] from TestMain,
// which stops the shared server once the tests have run:
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
//
// [Start] gives a test a private server that it may kill, restart or pause.
// Both need a redis-server binary in PATH (valkey-server if
// $REDISLOCK_SERVER is "valkey"); without one the test is skipped, or fails
// if $REDISLOCK_REQUIRE_REDIS is true.
package redistest

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// Environment variables read by this package.
const (
	// EnvAddr names a Redis server for [Addr] to return instead of starting
	// one. [Start] never uses it.
	EnvAddr = "REDIS_ADDR"

	// EnvRequire, when set to a true value ("1", "true"), turns the skip for
	// a missing redis-server binary into a test failure.
	EnvRequire = "REDISLOCK_REQUIRE_REDIS" // the same as redisproc.EnvRequire

	// EnvServer selects the server run: "redis" (default) or "valkey".
	EnvServer = "REDISLOCK_SERVER" // the same as redisproc.EnvServer
)

var (
	mainRunning atomic.Bool // Main is running the tests
	keySeq      atomic.Uint64

	shared struct {
		once sync.Once
		addr string // set by once
		err  error  // set by once

		mu  sync.Mutex // guards srv and dir
		srv *redisproc.Process
		dir string
	}
)

// Main runs the tests and then stops the shared server, if [Addr] started
// one, waiting for its process to exit and removing its files. It returns
// m.Run's exit code and does not call os.Exit.
func Main(m *testing.M) int {
	mainRunning.Store(true)
	defer mainRunning.Store(false)
	code := m.Run()
	stopShared()
	return code
}

// Addr returns the address of the Redis server shared by the test binary:
// $REDIS_ADDR if set, otherwise a redis-server on a loopback port that the
// first call starts (blocking until it answers) and [Main] stops. Starting
// one requires that TestMain calls Main. Tests share its data, so they
// should use distinct keys (see [Key]).
func Addr(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" {
		return addr
	}
	p := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, p.Hint()+", or set "+EnvAddr+" to a server's address", p.Server)
	if !mainRunning.Load() {
		tb.Fatalf("redistest: starting the shared redis-server needs TestMain to call redistest.Main (or set %s)", EnvAddr)
	}
	shared.once.Do(startShared)
	if shared.err != nil {
		tb.Fatalf("redistest: shared server: %v", shared.err)
	}
	return shared.addr
}

// Client returns a client of the server at [Addr], with opts applied to its
// options. tb.Cleanup closes it.
func Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return newClient(tb, Addr(tb), opts)
}

// Key returns a key name that no other call of Key returns, even in another
// test binary using the same server: "redistest:<test name>:<pid>:<n>".
func Key(tb testing.TB) string {
	return "redistest:" + tb.Name() + ":" + strconv.Itoa(os.Getpid()) + ":" + strconv.FormatUint(keySeq.Add(1), 10)
}

func newClient(tb testing.TB, addr string, opts []func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: addr}
	for _, opt := range opts {
		opt(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

func startShared() {
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		shared.err = err
		return
	}
	p, err := start(dir, 0, nil)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if err != nil {
		shared.err = err
		_ = os.RemoveAll(dir)
		return
	}
	shared.srv, shared.dir, shared.addr = p, dir, p.Addr()
}

func stopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		shared.srv.Kill()
		_ = os.RemoveAll(shared.dir)
		shared.srv = nil
	}
}
