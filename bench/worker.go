package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// workerArg, as the first argument, runs the binary as one process of a
// multi-process contention run. It is not a flag, so -h does not show it.
//
// Protocol on the worker's stdin and stdout, one line each:
//
//	worker → parent  "ready"                  warmed up, connections open
//	parent → worker  "go <unix-ns>"           the window starts at that wall time
//	worker → parent  <contendSample as JSON>  after the window
//
// The worker exits when its stdin closes, whatever it is doing.
const workerArg = "__contend-worker"

func workerMain(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("worker: want one JSON argument")
	}
	var spec contendSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	c, ok := contenderByName(spec.Contender)
	if !ok {
		return fmt.Errorf("worker: no contender %q", spec.Contender)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, unmap, err := mapShared(spec.Shm)
	if err != nil {
		return err
	}
	defer unmap()
	var reqs atomic.Int64
	f, err := c.open(openOpts{addr: spec.Addr, reqs: &reqs, limit: spec.Limit})
	if err != nil {
		return err
	}
	defer f.Close()

	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	s, err := contend(ctx, f, spec, st, &reqs, func() (time.Time, error) {
		fmt.Fprintln(out, "ready")
		if err := out.Flush(); err != nil {
			return time.Time{}, err
		}
		line, err := in.ReadString('\n')
		if err != nil {
			return time.Time{}, fmt.Errorf("worker: waiting for go: %w", err)
		}
		ns, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(line), "go "), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("worker: bad go line %q", line)
		}
		// Stop when the parent goes away.
		go func() {
			_, _ = io.Copy(io.Discard, in)
			cancel()
		}()
		// Wall clock across processes; from here on, this process's monotonic clock.
		return time.Now().Add(time.Until(time.Unix(0, ns))), nil
	})
	if err != nil {
		return err
	}
	if err := json.NewEncoder(out).Encode(s); err != nil {
		return err
	}
	return out.Flush()
}

// runContendMultiProc runs procs worker processes of g goroutines each on
// one key and merges what they measured. With limit > 1 the lock is a
// semaphore of that many holders.
func runContendMultiProc(ctx context.Context, srv *server, c contender, procs, g, limit int, hold, window time.Duration) (row contendRow) {
	row = contendRow{c: c, procs: procs, goroutines: g, hold: hold, window: window, limit: max(1, limit), gapsKnown: limit <= 1,
		label: fmt.Sprintf("%d processes × %d goroutines, hold %v", procs, g, hold)}
	if limit > 1 {
		row.label = fmt.Sprintf("limit %d, %d processes × %d goroutines, hold %v", limit, procs, g, hold)
	}
	s, err := multiProc(ctx, srv, c, procs, g, limit, hold, window)
	if err != nil {
		row.err = err
		return row
	}
	row.finish(ctx, srv, s)
	return row
}

func multiProc(ctx context.Context, srv *server, c contender, procs, g, limit int, hold, window time.Duration) (contendSample, error) {
	var merged contendSample
	exe, err := os.Executable()
	if err != nil {
		return merged, err
	}
	dir, err := os.MkdirTemp("", "redislock-bench-shm-")
	if err != nil {
		return merged, err
	}
	defer os.RemoveAll(dir)
	shm := filepath.Join(dir, "holders")
	if err := os.WriteFile(shm, make([]byte, shmSize), 0o600); err != nil {
		return merged, err
	}
	spec := contendSpec{Contender: c.name, Addr: srv.addr, Key: "bench:contended", Goroutines: g, Hold: hold, Window: window, Limit: limit, Shm: shm}
	arg, err := json.Marshal(spec)
	if err != nil {
		return merged, err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type worker struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		lines  chan string
		done   chan struct{} // closed when the worker has been waited for
		stderr *tailWriter
	}
	workers := make([]*worker, 0, procs)
	defer func() {
		// Close stdin (the worker exits), then make sure each has exited.
		for _, w := range workers {
			_ = w.stdin.Close()
		}
		for _, w := range workers {
			select {
			case <-w.done:
			case <-time.After(10 * time.Second):
				_ = w.cmd.Process.Kill()
				<-w.done // stdout closes when the process dies
			}
		}
	}()
	for range procs {
		cmd := exec.Command(exe, workerArg, string(arg))
		cmd.SysProcAttr = childAttr()
		tail := &tailWriter{max: 2048}
		cmd.Stderr = io.MultiWriter(os.Stderr, tail)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return merged, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return merged, err
		}
		if err := cmd.Start(); err != nil {
			return merged, fmt.Errorf("start worker: %w", err)
		}
		w := &worker{cmd: cmd, stdin: stdin, lines: make(chan string, 4), done: make(chan struct{}), stderr: tail}
		workers = append(workers, w)
		var readers sync.WaitGroup
		readers.Add(1)
		go func() {
			defer readers.Done()
			defer close(w.lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
			for sc.Scan() {
				w.lines <- sc.Text()
			}
		}()
		go func() {
			readers.Wait() // Wait must not run before stdout is read to the end
			_ = cmd.Wait()
			close(w.done)
		}()
	}
	next := func(w *worker, timeout time.Duration, what string) (string, error) {
		select {
		case line, ok := <-w.lines:
			if !ok {
				select { // stderr is complete once the worker has been waited for
				case <-w.done:
				case <-time.After(5 * time.Second):
				}
				return "", fmt.Errorf("worker exited before %s: %s", what, strings.TrimSpace(w.stderr.String()))
			}
			return line, nil
		case <-time.After(timeout):
			return "", fmt.Errorf("no %s from worker within %v", what, timeout)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	for _, w := range workers {
		line, err := next(w, 60*time.Second, "ready")
		if err != nil {
			return merged, err
		}
		if line != "ready" {
			return merged, fmt.Errorf("worker said %q, want ready", line)
		}
	}
	if err := srv.reset(ctx); err != nil {
		return merged, err
	}
	start := time.Now().Add(100 * time.Millisecond)
	for _, w := range workers {
		if _, err := fmt.Fprintf(w.stdin, "go %d\n", start.UnixNano()); err != nil {
			return merged, err
		}
	}
	merged.Elapsed = int64(window)
	for _, w := range workers {
		line, err := next(w, window+60*time.Second, "result")
		if err != nil {
			return merged, err
		}
		var s contendSample
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return merged, fmt.Errorf("worker result: %w", err)
		}
		merged.Acq = append(merged.Acq, s.Acq...)
		merged.Waits = append(merged.Waits, s.Waits...)
		merged.Gaps = append(merged.Gaps, s.Gaps...)
		merged.MaxHolders = max(merged.MaxHolders, s.MaxHolders)
		merged.HoldSum += s.HoldSum
		merged.Cut += s.Cut
		merged.CutWaits = append(merged.CutWaits, s.CutWaits...)
		merged.Fails += s.Fails
		merged.UnlockFails += s.UnlockFails
		merged.Violations += s.Violations
		merged.Requests += s.Requests
		if merged.FirstErr == "" {
			merged.FirstErr = s.FirstErr
		}
	}
	return merged, nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
