package redislock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// These tests run the Python original itself (redis_lock.py from the seed
// folder, under Debian's python3-redis) against one private Redis together
// with this package.

const (
	// envSeedDir names the folder holding redis_lock.py and seed_holder.py;
	// by default ../shared/seed from the module root.
	envSeedDir = "REDISLOCK_SEED_DIR"
	// envRequirePython, when true, fails the tests below instead of
	// skipping them when the original cannot run. CI sets it.
	envRequirePython = "REDISLOCK_REQUIRE_PYTHON"

	python = "/usr/bin/python3" // Debian's, which python3-redis installs into

	pyReplyTimeout = 20 * time.Second // one command of the Python original
	pyOutputLimit  = 16 << 10         // bytes of a Python process's stderr kept
)

var pyCheck struct {
	once sync.Once
	seed string // the seed folder, when err is nil
	err  error
}

// pythonOriginal returns the seed folder, or skips tb (fails it when
// $REDISLOCK_REQUIRE_PYTHON is true) if the folder, /usr/bin/python3 or its
// redis package is missing.
func pythonOriginal(tb testing.TB) string {
	tb.Helper()
	pyCheck.once.Do(func() { pyCheck.seed, pyCheck.err = findPythonOriginal() })
	if pyCheck.err == nil {
		return pyCheck.seed
	}
	msg := fmt.Sprintf("the Python original cannot run: %v (%s=1 makes this a failure)", pyCheck.err, envRequirePython)
	if required, _ := strconv.ParseBool(os.Getenv(envRequirePython)); required {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

func findPythonOriginal() (string, error) {
	seed := os.Getenv(envSeedDir)
	if seed == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		seed = filepath.Join(root, "..", "shared", "seed")
	}
	for _, f := range []string{"redis_lock.py", "seed_holder.py"} {
		if _, err := os.Stat(filepath.Join(seed, f)); err != nil {
			return "", fmt.Errorf("no seed folder: %w (set %s to the folder holding redis_lock.py)", err, envSeedDir)
		}
	}
	if _, err := os.Stat(python); err != nil {
		return "", fmt.Errorf("%w (apt-get install python3)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pyReplyTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, "-c", "import redis.asyncio").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s cannot import redis.asyncio: %v: %s (apt-get install python3-redis)", python, err, bounded(out))
	}
	return seed, nil
}

// moduleRoot returns the nearest folder at or above the working directory
// that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func bounded(b []byte) string {
	if len(b) > pyOutputLimit {
		b = append(b[:pyOutputLimit:pyOutputLimit], "…"...)
	}
	return strings.TrimSpace(string(b))
}

// cappedBuffer keeps the first pyOutputLimit bytes written to it.
type cappedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p[:min(len(p), max(pyOutputLimit-len(b.buf), 0))]...)
	return len(p), nil
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

// pyDriver runs the original's RedisLock on stdin commands, one per line:
// "acquire SECONDS" answers "held" or "busy" (the original's acquire with
// that timeout; 0 would mean forever there), "release" answers "released" or
// "refused". It first prints "ready OWNER".
const pyDriver = `
import asyncio, sys
from datetime import timedelta
import redis.asyncio as redis
from redis_lock import RedisLock

async def main(port, name, ttl_ms):
    client = redis.Redis(host="127.0.0.1", port=port)
    lock = RedisLock(client, name, ttl=timedelta(milliseconds=ttl_ms))
    await client.ping()
    print("ready", lock._owner_id, flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "acquire":
            ok = await lock.acquire(timeout=timedelta(seconds=float(cmd[1])))
            print("held" if ok else "busy", flush=True)
        elif cmd[0] == "release":
            print("released" if await lock.release() else "refused", flush=True)
        else:
            print("unknown command", cmd[0], flush=True)
    await client.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
`

// pyLock is one process running the Python original's RedisLock.
type pyLock struct {
	tb     testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // stdout, line by line; closed at EOF
	read   chan struct{} // closed when the stdout reader has returned
	stop   chan struct{} // closed by kill, to stop the stdout reader
	stderr *cappedBuffer
	once   sync.Once
	owner  string // the original's owner ID
}

// startPyLock starts the original on lock name with ttl against srv and
// waits until it is connected. tb.Cleanup kills the process and waits for it.
func startPyLock(tb testing.TB, srv *redistest.Server, name string, ttl time.Duration) *pyLock {
	tb.Helper()
	seed := pythonOriginal(tb)
	cmd := exec.Command(python, "-u", "-c", pyDriver, redisPort(tb, srv), name, strconv.FormatInt(ttl.Milliseconds(), 10))
	cmd.Env = append(os.Environ(), "PYTHONPATH="+seed)
	p := &pyLock{tb: tb, cmd: cmd, lines: make(chan string), read: make(chan struct{}), stop: make(chan struct{}), stderr: &cappedBuffer{}}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go p.readLines(stdout)
	tb.Cleanup(p.kill)
	ready := p.reply()
	owner, ok := strings.CutPrefix(ready, "ready ")
	if !ok {
		tb.Fatalf("the Python original started with %q", ready)
	}
	p.owner = owner
	return p
}

func (p *pyLock) readLines(stdout io.Reader) {
	defer close(p.read)
	defer close(p.lines)
	s := bufio.NewScanner(stdout) // lines over 64 KiB end the reading
	for s.Scan() {
		select {
		case p.lines <- s.Text():
		case <-p.stop:
			return
		}
	}
}

// send writes one command line without waiting for its answer.
func (p *pyLock) send(line string) {
	p.tb.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.tb.Fatalf("the Python original: %q: %v; stderr: %s", line, err, p.stderr)
	}
}

// reply waits for the next answer.
func (p *pyLock) reply() string {
	p.tb.Helper()
	timer := time.NewTimer(pyReplyTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			p.tb.Fatalf("the Python original exited; stderr: %s", p.stderr)
		}
		return line
	case <-timer.C:
		p.tb.Fatalf("the Python original did not answer within %v; stderr: %s", pyReplyTimeout, p.stderr)
		return ""
	}
}

// do sends a command and returns its answer.
func (p *pyLock) do(line string) string {
	p.tb.Helper()
	p.send(line)
	return p.reply()
}

// kill kills the process with SIGKILL, as a crash would, and waits for it
// and its stdout reader. It may be called again.
func (p *pyLock) kill() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		close(p.stop)
		<-p.read
		_ = p.cmd.Wait() // closes stdin too
	})
}

func redisPort(tb testing.TB, srv *redistest.Server) string {
	tb.Helper()
	i := strings.LastIndexByte(srv.Addr(), ':')
	if i < 0 {
		tb.Fatalf("no port in %q", srv.Addr())
	}
	return srv.Addr()[i+1:]
}

// scriptCalls returns how many times srv has run command (EVAL or
// EVALSHA). The original sends EVAL on every attempt; this package sends
// EVALSHA, and EVAL only for a script the server lacks.
func scriptCalls(tb testing.TB, srv *redistest.Server, command string) int {
	tb.Helper()
	stats := srv.Do(tb, "INFO", "commandstats").String()
	_, rest, ok := strings.Cut(stats, "cmdstat_"+command+":calls=")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	return n
}

// waitScriptCalls polls until srv has run command more than n times.
func waitScriptCalls(t *testing.T, srv *redistest.Server, command string, n int, what string) {
	t.Helper()
	eventually(t, pyReplyTimeout, func() bool { return scriptCalls(t, srv, command) > n }, what)
}

func TestPythonOriginalRefusedUntilGoReleasesBothLevels(t *testing.T) {
	seed := pythonOriginal(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	gl := newLock(t, c, name)

	// seed_holder.py, as shipped with the original: "try" acquires with a
	// timeout and says "held" (releasing at once) or "busy".
	try := func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, pyReplyTimeout)
		defer cancel()
		out := &cappedBuffer{}
		cmd := exec.CommandContext(ctx, python, filepath.Join(seed, "seed_holder.py"), redisPort(t, srv), name, "try", "0.2")
		cmd.Stdout, cmd.Stderr = out, out
		require.NoError(t, cmd.Run(), "seed_holder.py: %s", out)
		return out.String()
	}

	require.NoError(t, gl.Acquire(ctx))
	require.NoError(t, gl.Acquire(ctx))
	assert.Equal(t, "2", c.HGet(ctx, "lock:"+name, "count").Val())
	assert.Equal(t, "busy", try(), "Go holds two levels")
	require.NoError(t, gl.Release(ctx))
	assert.Equal(t, "busy", try(), "Go still holds one level")
	require.NoError(t, gl.Release(ctx))
	assert.Equal(t, "held", try(), "Go released both levels")
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val(), "the original released its hold")
}

func TestPythonOriginalWaitsForGoRelease(t *testing.T) {
	pythonOriginal(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	gl := newLock(t, c, name)
	py := startPyLock(t, srv, name, 10*time.Second)

	require.NoError(t, gl.Acquire(ctx))
	require.NoError(t, gl.Acquire(ctx))
	assert.Equal(t, "busy", py.do("acquire 0.2"))
	require.NoError(t, gl.Release(ctx))
	assert.Equal(t, "busy", py.do("acquire 0.2"), "Go still holds one level")

	// The original polls every 50 ms: once it has been refused while
	// waiting, Go's last release lets it in.
	n := scriptCalls(t, srv, "eval")
	py.send("acquire 10")
	waitScriptCalls(t, srv, "eval", n, "the original's attempt while Go holds")
	assert.True(t, gl.Held())
	require.NoError(t, gl.Release(ctx))
	assert.Equal(t, "held", py.reply())
	assert.Equal(t, py.owner, c.HGet(ctx, "lock:"+name, "owner").Val())
	assert.Equal(t, "1", c.HGet(ctx, "lock:"+name, "count").Val())

	// While the original holds, Go cannot take the lock, nor release it.
	ok, err := gl.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.ErrorIs(t, gl.Release(ctx), redislock.ErrNotHeld)
	assert.Equal(t, "released", py.do("release"))
	assert.Zero(t, c.Exists(ctx, "lock:"+name).Val())
}

func TestGoWaitsForPythonOriginalRelease(t *testing.T) {
	pythonOriginal(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	gl := newLock(t, c, name, redislock.WithWaitTimeout(pyReplyTimeout))
	py := startPyLock(t, srv, name, 10*time.Second)

	assert.Equal(t, "held", py.do("acquire 1"))
	ok, err := gl.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "the original holds")

	// The original's release announces nothing: the waiter's lease-capped
	// backoff finds the lock free.
	n := scriptCalls(t, srv, "evalsha")
	acquired := make(chan error, 1)
	go func() { acquired <- gl.Acquire(ctx) }()
	waitScriptCalls(t, srv, "evalsha", n, "the Go waiter's attempt while the original holds")
	select {
	case err := <-acquired:
		t.Fatalf("Acquire returned while the original held: %v", err)
	default:
	}
	// "released" means the original still owned the key when it let go,
	// so the Go waiter cannot have been let in before.
	assert.Equal(t, "released", py.do("release"))
	timer := time.NewTimer(pyReplyTimeout)
	defer timer.Stop()
	select {
	case err := <-acquired:
		require.NoError(t, err)
	case <-timer.C:
		t.Fatal("the Go waiter did not take over after the original's release")
	}
	assert.Equal(t, gl.Owner(), c.HGet(ctx, "lock:"+name, "owner").Val())

	// While Go holds, the original is refused.
	assert.Equal(t, "busy", py.do("acquire 0.2"))
	require.NoError(t, gl.Release(ctx))
	assert.Equal(t, "held", py.do("acquire 1"))
	assert.Equal(t, "released", py.do("release"))
}

func TestGoTakesOverFromCrashedPythonOriginal(t *testing.T) {
	pythonOriginal(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	const ttl = 1500 * time.Millisecond
	gl := newLock(t, c, name, redislock.WithWaitTimeout(ttl+pyReplyTimeout))
	py := startPyLock(t, srv, name, ttl)

	assert.Equal(t, "held", py.do("acquire 1"))
	py.kill()
	// The key expires on the server's clock; both run at one rate here.
	start := time.Now()
	pttl := c.PTTL(ctx, "lock:"+name).Val()
	require.Positive(t, pttl, "the crashed original's key")
	ok, err := gl.TryAcquire(ctx)
	require.NoError(t, err)
	assert.False(t, ok, "the crashed original's lease still runs")

	require.NoError(t, gl.Acquire(ctx))
	waited := time.Since(start)
	assert.GreaterOrEqual(t, waited, pttl-10*time.Millisecond, "Go got in before the lease ran out")
	assert.Less(t, waited, pttl+3*time.Second, "the waiter's sleeps are capped by the lease")
	assert.Equal(t, gl.Owner(), c.HGet(ctx, "lock:"+name, "owner").Val())
	require.NoError(t, gl.Release(ctx))
}
