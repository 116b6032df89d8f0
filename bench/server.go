package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is the Redis server the benchmark runs against: one it started
// itself (proc != nil) or the one $REDIS_ADDR names.
type server struct {
	addr       string
	proc       *exec.Cmd
	procExited chan error // receives the exit status of proc, once
	dir        string
	own        bool
	admin      *redis.Client // uncounted client for FLUSHALL, CONFIG RESETSTAT, INFO
}

// startServer starts a private redis-server on a free loopback port with
// persistence off, or connects to $REDIS_ADDR when that is set. It waits
// until the server answers PING.
func startServer(ctx context.Context, addr string) (*server, error) {
	s := &server{addr: addr}
	if addr == "" {
		if err := s.spawn(ctx); err != nil {
			return nil, err
		}
	}
	s.admin = redis.NewClient(&redis.Options{Addr: s.addr, DisableIdentity: true, PoolSize: 2})
	if err := s.ping(ctx, 10*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) spawn(ctx context.Context) error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server not in PATH (or set REDIS_ADDR): %w", err)
	}
	dir, err := os.MkdirTemp("", "redislock-bench-")
	if err != nil {
		return err
	}
	s.dir, s.own = dir, true
	var lastErr error
	for try := 0; try < 5; try++ { // a free port can be taken between probe and bind
		port, err := freePort()
		if err != nil {
			return err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--logfile", filepath.Join(dir, "redis.log"),
			"--daemonize", "no",
		)
		cmd.SysProcAttr = childAttr()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start redis-server: %w", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitPort(ctx, addr, exited, 10*time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-exited
			lastErr = err
			continue
		}
		s.addr, s.proc = addr, cmd
		s.procExited = exited
		return nil
	}
	return fmt.Errorf("redis-server did not come up: %w (log in %s)", lastErr, dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitPort waits until addr accepts connections, the process exits, or
// the timeout passes.
func waitPort(ctx context.Context, addr string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer on %s within %v", addr, timeout)
}

func (s *server) ping(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		err := s.admin.Ping(c).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis at %s: %w", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop closes the admin client and, for a server of our own, stops it
// (SIGTERM, then SIGKILL after 5 s) and removes its directory.
func (s *server) stop() {
	if s.admin != nil {
		_ = s.admin.Close()
	}
	if s.proc != nil {
		_ = s.proc.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.procExited:
		case <-time.After(5 * time.Second):
			_ = s.proc.Process.Kill()
			<-s.procExited
		}
		s.proc = nil
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// reset empties the server and zeroes its command statistics, so the next
// run's INFO commandstats counts only that run.
func (s *server) reset(ctx context.Context) error {
	if err := s.admin.FlushAll(ctx).Err(); err != nil {
		return fmt.Errorf("FLUSHALL: %w", err)
	}
	if err := s.admin.ConfigResetStat(ctx).Err(); err != nil {
		return fmt.Errorf("CONFIG RESETSTAT: %w", err)
	}
	return nil
}

// adminCommands are the commands this harness sends itself; they are left
// out of the command counts.
var adminCommands = []string{"config", "info", "flushall", "flushdb", "dbsize", "ping", "hello", "client"}

// cmdStat is one line of INFO commandstats.
type cmdStat struct {
	calls int64
	usec  int64 // server time in the command, a script's inner commands included
}

// commandStats returns INFO commandstats by command name (lower case, a
// subcommand as "config|get"), less the harness's own admin commands.
func (s *server) commandStats(ctx context.Context) (map[string]cmdStat, error) {
	txt, err := s.admin.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	stats := map[string]cmdStat{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		name = strings.TrimPrefix(name, "cmdstat_")
		base, _, _ := strings.Cut(name, "|")
		if isAdmin(base) {
			continue
		}
		var st cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			var dst *int64
			switch k {
			case "calls":
				dst = &st.calls
			case "usec":
				dst = &st.usec
			default:
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("commandstats %q: %w", line, err)
			}
			*dst = n
		}
		stats[name] = st
	}
	return stats, sc.Err()
}

// commandCalls returns the total calls in INFO commandstats, the commands
// that scripts ran included, less the harness's own admin commands.
func (s *server) commandCalls(ctx context.Context) (int64, error) {
	stats, err := s.commandStats(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, st := range stats {
		total += st.calls
	}
	return total, nil
}

// serverTime sums the usec of INFO commandstats over the commands the
// client sent (sent.has), which leaves out the inner commands of its
// scripts: their time is already in the script's.
func serverTime(stats map[string]cmdStat, sent *cmdNames) time.Duration {
	var usec int64
	for name, st := range stats {
		base, _, _ := strings.Cut(name, "|")
		if sent.has(base) {
			usec += st.usec
		}
	}
	return time.Duration(usec) * time.Microsecond
}

// usedMemory returns used_memory from INFO memory: the bytes Redis has
// allocated, keys, expiry tables, client buffers and script caches included.
func (s *server) usedMemory(ctx context.Context) (int64, error) {
	txt, err := s.admin.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("INFO memory: no used_memory")
}

func isAdmin(cmd string) bool {
	for _, a := range adminCommands {
		if cmd == a {
			return true
		}
	}
	return false
}

func (s *server) version(ctx context.Context) string {
	txt, err := s.admin.Info(ctx, "server").Result()
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(txt, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			return v
		}
	}
	return "unknown"
}

func (s *server) dbsize(ctx context.Context) (int64, error) {
	return s.admin.DBSize(ctx).Result()
}

var errServerGone = errors.New("redis-server exited")

// alive reports an error if our own server has exited.
func (s *server) alive() error {
	if s.proc == nil {
		return nil
	}
	select {
	case err := <-s.procExited:
		s.procExited <- err
		return fmt.Errorf("%w: %v", errServerGone, err)
	default:
		return nil
	}
}
