package redistest

import (
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// Server is a redis-server process private to one test, started by [Start].
// Its methods may be called from any goroutine.
type Server struct {
	addr string
	port int
	dir  string
	args []string

	mu   sync.Mutex
	proc *redisproc.Process // nil while killed
}

// Start starts a redis-server on a free loopback port, with persistence
// off, files in a directory from tb.TempDir and args appended to its command
// line (for example "--maxmemory", "10mb"). It blocks until the server
// answers. tb.Cleanup kills the server and waits for it to exit.
//
// Start never uses $REDIS_ADDR: without a redis-server binary in PATH
// (valkey-server if $REDISLOCK_SERVER is "valkey") it skips the test, or
// fails it if $REDISLOCK_REQUIRE_REDIS is true.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	progs := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, progs.Hint()+" (this test runs its own server, so "+EnvAddr+" does not help)", progs.Server)
	dir := tb.TempDir()
	p, err := start(dir, 0, args)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s := &Server{addr: p.Addr(), port: p.Port(), dir: dir, args: slices.Clone(args), proc: p}
	tb.Cleanup(s.kill) // registered after TempDir, so it runs before the removal
	return s
}

// Addr returns the server's "host:port". It stays the same across [Server.Restart].
func (s *Server) Addr() string { return s.addr }

// Client returns a client of the server, with opts applied to its options.
// tb.Cleanup closes it. The client outlives [Server.Restart], reconnecting.
func (s *Server) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return newClient(tb, s.addr, opts)
}

// Kill kills the server with SIGKILL and waits for it to exit. Its data is
// lost. Kill on a killed server does nothing.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.kill()
}

func (s *Server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
}

// Restart kills the server if it is running and starts a new one on the
// same port with the same arguments and no data. It blocks until the new
// server answers, waiting up to 10 s for the port to come free.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
	p, err := start(s.dir, s.port, s.args)
	if err != nil {
		tb.Fatalf("redistest: restart: %v", err)
	}
	s.proc = p
}

// Pause stops the server with SIGSTOP and returns once it has stopped. It
// then answers nothing, but its connections stay open and the kernel still
// accepts new ones. Call [Server.Resume] to continue it; cleanup and Kill
// work on a paused server.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		tb.Fatal("redistest: Pause: server is not running")
	}
	err := s.proc.Signal(syscall.SIGSTOP)
	if err == nil {
		err = s.proc.WaitStopped()
	}
	if err != nil {
		tb.Fatalf("redistest: Pause: %v", err)
	}
}

// Resume continues a server stopped by [Server.Pause] with SIGCONT. It does
// not wait for the server to answer; requests sent meanwhile are served in
// order. Resume on a running server does nothing.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		tb.Fatal("redistest: Resume: server is not running")
	}
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		tb.Fatalf("redistest: Resume: %v", err)
	}
}
