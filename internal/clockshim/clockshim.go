// Package clockshim runs a Redis (or Valkey) server whose clocks run at
// another rate than the machine's, for tests of what a fast or slow server
// clock does to leases.
//
// The server is started with an LD_PRELOAD library (src/shim.c, built from the
// test with the system C compiler) that scales clock_gettime,
// gettimeofday and time by the rate in $REDISLOCK_CLOCK_RATE, relative to
// the moment the server started. Redis 7 expires keys by its wall clock
// (gettimeofday, through mstime/ustime); the shim scales the monotonic
// clocks too, as a fast oscillator would. libfaketime cannot do this here:
// its interposition recurses through jemalloc while the server starts.
package clockshim

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// EnvRate is the variable the shim reads its rate from.
const EnvRate = "REDISLOCK_CLOCK_RATE"

//go:embed src/shim.c
var source string

// Build compiles the shim with the system C compiler ($CC, else gcc, else
// cc) into a directory from tb.TempDir and returns the library's path.
// Without a compiler it skips tb, or fails it if $REDISLOCK_REQUIRE_REDIS
// is true; a compiler that fails fails tb.
func Build(tb testing.TB) string {
	tb.Helper()
	cc := compiler()
	if cc == "" {
		msg := "clockshim: no C compiler ($CC, gcc or cc) in PATH to build the LD_PRELOAD clock shim; install gcc (" +
			redisproc.EnvRequire + "=1 makes this a failure)"
		if required, _ := strconv.ParseBool(os.Getenv(redisproc.EnvRequire)); required {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	dir := tb.TempDir()
	src := filepath.Join(dir, "shim.c")
	lib := filepath.Join(dir, "clockshim.so")
	if err := os.WriteFile(src, []byte(source), 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command(cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", lib, src).CombinedOutput()
	if err != nil {
		tb.Fatalf("clockshim: %s: %v\n%s", cc, err, out)
	}
	return lib
}

func compiler() string {
	for _, cc := range []string{os.Getenv("CC"), "gcc", "cc"} {
		if cc == "" {
			continue
		}
		if path, err := exec.LookPath(cc); err == nil {
			return path
		}
	}
	return ""
}

// Server is a server process whose clocks run at a rate of its own.
type Server struct {
	proc *redisproc.Process
	Rate float64
}

// Start builds the shim and starts the server that $REDISLOCK_SERVER
// selects on a free loopback port, with persistence off, its clocks
// running rate times as fast as the machine's, and args appended to its
// command line. It blocks until the server answers. tb.Cleanup kills it.
// It skips tb where [Build] does, or where the server binary is missing.
func Start(tb testing.TB, rate float64, args ...string) *Server {
	tb.Helper()
	progs := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, progs.Hint(), progs.Server, "env")
	lib := Build(tb)
	dir := tb.TempDir()
	spec := redisproc.Spec{
		Dir: dir,
		// env execs the server in its own process, so the readiness probe
		// finds the process ID it started.
		Command: func(port int) (string, []string, error) {
			cmd := []string{"LD_PRELOAD=" + lib, EnvRate + "=" + strconv.FormatFloat(rate, 'g', -1, 64), progs.Server}
			return "env", append(append(cmd, redisproc.ServerArgs(dir, port)...), args...), nil
		},
	}
	p, err := redisproc.StartFreePort(spec, 5, redisproc.FreePort)
	if err != nil {
		tb.Fatalf("clockshim: %v", err)
	}
	tb.Cleanup(p.Kill)
	return &Server{proc: p, Rate: rate}
}

// Addr returns the server's "127.0.0.1:port".
func (s *Server) Addr() string { return s.proc.Addr() }

// Client returns a client of the server, with opts applied to its options.
// tb.Cleanup closes it.
func (s *Server) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	o := &redis.Options{Addr: s.Addr()}
	for _, opt := range opts {
		opt(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}
