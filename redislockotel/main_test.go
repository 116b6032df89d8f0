package redislockotel_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisServer is a private redis-server on a free loopback port.
type redisServer struct {
	cmd  *exec.Cmd
	addr string
}

// startRedis starts a redis-server (valkey-server when
// REDISLOCK_SERVER=valkey) for t without persistence and kills it in t's
// Cleanup. It skips t when the program is missing, unless
// REDISLOCK_REQUIRE_REDIS=1, which makes that a failure.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	prog := "redis-server"
	if os.Getenv("REDISLOCK_SERVER") == "valkey" {
		prog = "valkey-server"
	}
	bin, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("REDISLOCK_REQUIRE_REDIS") == "1" {
			t.Fatalf("%s not found and REDISLOCK_REQUIRE_REDIS=1: %v", prog, err)
		}
		t.Skipf("%s not found in PATH: install it to run this test (REDISLOCK_REQUIRE_REDIS=1 makes this a failure)", prog)
	}
	var lastErr error
	for range 3 { // a port found free may be taken before the server binds it
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{}) // closed when the process has been reaped
		go func() { _ = cmd.Wait(); close(exited) }()
		if lastErr = waitReady(addr, exited); lastErr == nil {
			t.Cleanup(func() {
				_ = cmd.Process.Signal(syscall.SIGCONT) // in case a test left it stopped
				_ = cmd.Process.Kill()
				<-exited
			})
			return &redisServer{cmd: cmd, addr: addr}
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("%s did not start: %v", prog, lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls addr with PING for up to 5 s, or until the server exits.
func waitReady(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s within 5s: %w", addr, err)
		}
		select {
		case <-exited:
			return errors.New("redis-server exited")
		case <-tick.C:
		}
	}
}

// client returns a client of s, closed in t's Cleanup.
func (s *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// pause stops the server's process (SIGSTOP) until the returned function
// resumes it; Cleanup resumes it too.
func (s *redisServer) pause(t *testing.T) (resume func()) {
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	return func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) }
}

// eventually polls cond every 10 ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		<-tick.C
	}
}
