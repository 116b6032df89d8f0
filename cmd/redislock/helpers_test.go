//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/history"
	"github.com/redislock/redislock/internal/redistest"
)

// The tests are for Linux: they use Pdeathsig, and the clock that
// internal/history shares between processes there.

// bin is the redislock binary that TestMain builds.
var bin string

// The test binary doubles as the child that redislock runs: with envChild
// set it acts as the child (see childMain) instead of running tests.
const (
	envChild  = "REDISLOCK_TEST_CHILD"      // the child's mode
	envFile   = "REDISLOCK_TEST_FILE"       // where the child records what it does
	envCode   = "REDISLOCK_TEST_CODE"       // exit code of mode "exit"
	envNoTerm = "REDISLOCK_TEST_NOTERM"     // "1": the child ignores SIGTERM
	envGrand  = "REDISLOCK_TEST_GRANDCHILD" // "1": the child starts a grandchild that ignores SIGTERM
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redislock-cmd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "redislock")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// childMain is the child's program. Every mode records lines in $envFile:
//
//	append  "start <token>", 50 ms later "end <token>"
//	exit    nothing; exits with $envCode
//	signal  nothing; kills itself with SIGKILL
//	env     each REDISLOCK_* variable as NAME=value
//	hold    "start <now> <pid> <pgid>", then "sig <name> <now>" for each
//	        SIGINT, SIGHUP and SIGTERM; on SIGTERM "exit <now>" and exits,
//	        unless $envNoTerm; exits after 60 s at the latest
//
// <now> is history.Now, a clock shared with the test process.
func childMain(mode string) int {
	path := os.Getenv(envFile)
	record := func(format string, args ...any) {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		if _, err := fmt.Fprintf(f, format+"\n", args...); err != nil {
			panic(err)
		}
	}
	switch mode {
	case "append":
		tok := os.Getenv("REDISLOCK_TOKEN")
		record("start %s", tok)
		time.Sleep(50 * time.Millisecond) // a window for another holder to interleave
		record("end %s", tok)
		return 0
	case "exit":
		n, _ := strconv.Atoi(os.Getenv(envCode))
		return n
	case "signal":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(10 * time.Second)
		return 0
	case "env":
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "REDISLOCK_") && !strings.HasPrefix(kv, "REDISLOCK_TEST_") {
				record("%s", kv)
			}
		}
		return 0
	case "hold":
		sigs := make(chan os.Signal, 8)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGHUP, syscall.SIGTERM)
		if os.Getenv(envGrand) == "1" {
			gc := exec.Command(os.Args[0])
			gc.Env = append(os.Environ(), envFile+"="+path+".grandchild", envNoTerm+"=1", envGrand+"=0")
			if err := gc.Start(); err != nil {
				panic(err)
			}
			// Not waited for: it outlives this process unless killed.
		}
		record("start %d %d %d", history.Now(), os.Getpid(), syscall.Getpgrp())
		deadline := time.NewTimer(60 * time.Second)
		for {
			select {
			case s := <-sigs:
				record("sig %s %d", s, history.Now())
				if s == syscall.SIGTERM && os.Getenv(envNoTerm) != "1" {
					record("exit %d", history.Now())
					return 128 + int(syscall.SIGTERM)
				}
			case <-deadline.C:
				return 0
			}
		}
	}
	return 2
}

// proc is a redislock process started by a test.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	start          time.Time
	end            time.Time
}

// server is a private Redis server and the environment that points
// redislock at it.
type server struct {
	*redistest.Server
	url string
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := redistest.Start(t)
	return &server{Server: s, url: "redis://" + s.Addr() + "/0"}
}

// startRun starts redislock with args, with child as its child's
// environment (envChild and friends), pointed at s (nil: $REDIS_URL unset,
// no --url added). t.Cleanup kills it if it is still running.
func startRun(t *testing.T, s *server, child []string, args ...string) *proc {
	t.Helper()
	return startProg(t, s, child, bin, args...)
}

// startProg is startRun for another program: one that runs redislock.
func startProg(t *testing.T, s *server, child []string, prog string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(prog, args...), done: make(chan struct{})}
	env := []string{"PATH=" + os.Getenv("PATH")}
	if s != nil {
		env = append(env, "REDIS_URL="+s.url)
	}
	p.cmd.Env = append(env, child...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.end = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill() // its child dies with it (Pdeathsig)
			<-p.done
		}
	})
	return p
}

// wait waits up to d for p to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("redislock %q did not exit within %v; stderr: %s", p.cmd.Args[1:], d, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// runWait runs redislock to the end (up to 30 s) and returns its exit
// code, stdout and stderr.
func runWait(t *testing.T, s *server, child []string, args ...string) (int, string, string) {
	t.Helper()
	p := startRun(t, s, child, args...)
	code := p.wait(t, 30*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// childEnv is the environment that makes the test binary act as the child
// in mode, recording in file.
func childEnv(mode, file string, extra ...string) []string {
	return append([]string{envChild + "=" + mode, envFile + "=" + file}, extra...)
}

// self is the command line that runs the test binary as the child.
func self() []string { return []string{"--", os.Args[0]} }

// lines returns the lines recorded in file ("" if none yet).
func lines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// waitLine polls file for up to d until a line starts with prefix, and
// returns that line's fields.
func waitLine(t *testing.T, file, prefix string, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, l := range lines(t, file) {
			if strings.HasPrefix(l, prefix) {
				return strings.Fields(l)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line %q in %s within %v; it has %q", prefix, file, d, lines(t, file))
		}
		<-tick.C
	}
}

func atoi64(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
