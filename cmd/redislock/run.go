//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redislock/redislock"
)

const runSynopsis = "redislock run [flags] NAME -- COMMAND [ARG...]"

// Defaults of run's flags.
const (
	defaultGrace          = 10 * time.Second
	defaultReplicaTimeout = 500 * time.Millisecond // below go-redis's default read timeout
)

// forwarded are the signals redislock passes on to the child's group.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

type runFlags struct {
	conn           connFlags
	ttl, wait      durationFlag
	grace          durationFlag
	replicaTimeout durationFlag
	limit          int
	fair           bool
	prefix         string
	minReplicas    int
	conflictCode   int
	lostCode       int
	verbose        bool
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.conn.register(fs)
	fs.Var(&f.ttl, "ttl", "`DURATION` of the lease, renewed while COMMAND runs (default "+redislock.DefaultTTL.String()+")")
	fs.Var(&f.wait, "wait", "`DURATION` to wait for the lock; 0: one attempt, like flock -n (default: until interrupted)")
	fs.Var(&f.grace, "grace", "`DURATION` between SIGTERM and SIGKILL when the lock is lost (default "+defaultGrace.String()+")")
	fs.IntVar(&f.limit, "limit", 0, "semaphore mode: up to `N` holders at once (all holders must agree on N)")
	fs.BoolVar(&f.fair, "fair", false, "serve waiters of every host in the order they asked (every holder of NAME must use --fair)")
	fs.StringVar(&f.prefix, "prefix", redislock.DefaultKeyPrefix, "key `prefix`: the key is prefix+NAME")
	fs.IntVar(&f.minReplicas, "min-replicas", 0, "wait until `N` replicas acknowledged every acquire and renewal")
	fs.Var(&f.replicaTimeout, "replica-timeout", "`DURATION` to wait for --min-replicas, below the client's read timeout (default "+defaultReplicaTimeout.String()+")")
	fs.IntVar(&f.conflictCode, "conflict-exit-code", exitConflict, "exit `code` when the lock was not acquired within --wait")
	fs.IntVar(&f.lostCode, "lost-exit-code", exitLost, "exit `code` when the lock was lost while COMMAND ran")
	fs.BoolVar(&f.verbose, "verbose", false, "say on stderr when the lock is acquired, not acquired and released")
}

// options returns the lock options the flags ask for.
func (f *runFlags) options(owner string) ([]redislock.Option, error) {
	opts := []redislock.Option{redislock.WithKeyPrefix(f.prefix), redislock.WithOwner(owner)}
	if f.fair {
		opts = append(opts, redislock.WithFair())
	}
	if f.ttl.set {
		opts = append(opts, redislock.WithTTL(f.ttl.d))
	}
	if f.wait.set {
		opts = append(opts, redislock.WithWaitTimeout(f.wait.d))
	}
	switch {
	case f.minReplicas < 0:
		return nil, usagef("--min-replicas %d is negative", f.minReplicas)
	case f.minReplicas > 0:
		rt := defaultReplicaTimeout
		if f.replicaTimeout.set {
			rt = f.replicaTimeout.d
		}
		opts = append(opts, redislock.WithMinReplicas(f.minReplicas, rt))
	case f.replicaTimeout.set:
		return nil, usagef("--replica-timeout needs --min-replicas")
	}
	for _, c := range []struct {
		name string
		code int
	}{{"--conflict-exit-code", f.conflictCode}, {"--lost-exit-code", f.lostCode}} {
		if c.code < 0 || c.code > 255 {
			return nil, usagef("%s %d is not in 0..255", c.name, c.code)
		}
	}
	return opts, nil
}

// runCommand is "redislock run". It returns the exit code, and an error
// to report on stderr (a usageError for a bad command line).
func runCommand(args []string, stdout, stderr io.Writer) (int, error) {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f.register(fs)
	if err := parseFlags(fs, args, runSynopsis, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return exitUsage, err
	}
	rest := fs.Args()
	switch {
	case len(rest) == 0:
		return exitUsage, usagef("run: missing lock NAME")
	case rest[0] == "":
		return exitUsage, usagef("run: empty lock NAME")
	case len(rest) > 1 && rest[1] != "--" && strings.HasPrefix(rest[1], "-"):
		return exitUsage, usagef("run: flag %s after NAME %q: flags go before NAME", rest[1], rest[0])
	case len(rest) == 1 || rest[1] != "--":
		return exitUsage, usagef("run: expected -- after NAME %q, then COMMAND", rest[0])
	case len(rest) == 2:
		return exitUsage, usagef("run: missing COMMAND after --")
	}
	name, command := rest[0], rest[2:]
	grace := defaultGrace
	if f.grace.set {
		grace = f.grace.d
	}
	limitSet := false
	fs.Visit(func(fl *flag.Flag) { limitSet = limitSet || fl.Name == "limit" })
	if limitSet && f.limit < 1 {
		return exitUsage, usagef("--limit %d is below 1", f.limit)
	}
	if limitSet && f.fair {
		return exitUsage, usagef("--fair and --limit cannot be combined")
	}
	owner, err := newOwner()
	if err != nil {
		return exitSoftware, err
	}
	opts, err := f.options(owner)
	if err != nil {
		return exitUsage, err
	}
	client, err := f.conn.client()
	if err != nil {
		return exitUsage, err
	}
	defer client.Close()
	var lock *redislock.Lock
	if f.limit > 0 {
		lock, err = redislock.NewSemaphore(client, name, f.limit, opts...)
	} else {
		lock, err = redislock.New(client, name, opts...)
	}
	if err != nil {
		return exitUsage, usageError{err}
	}

	r := &runner{lock: lock, command: command, grace: grace, stderr: stderr, lostCode: f.lostCode}
	return r.run(f.conflictCode, f.verbose)
}

// newOwner returns an owner identity that says where the holder runs:
// host:pid:random.
func newOwner() (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:])), nil
}

// signalCause is the cause of the wait's cancellation by a signal.
type signalCause struct{ sig syscall.Signal }

func (s signalCause) Error() string { return "interrupted by " + s.sig.String() }

type runner struct {
	lock     *redislock.Lock
	command  []string
	grace    time.Duration
	stderr   io.Writer
	lostCode int
	sigs     chan os.Signal
}

func (r *runner) run(conflictCode int, verbose bool) (int, error) {
	r.sigs = make(chan os.Signal, 8)
	// A signal ignored at start (nohup, a shell's background job) stays
	// ignored, for the child too, which inherits the disposition.
	var catch []os.Signal
	for _, s := range forwarded {
		if !signal.Ignored(s) {
			catch = append(catch, s)
		}
	}
	if len(catch) > 0 { // Notify without signals would relay them all
		signal.Notify(r.sigs, catch...)
		defer signal.Stop(r.sigs)
	}

	// Until the child starts, a signal ends the wait for the lock.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case s := <-r.sigs:
			cancel(signalCause{s.(syscall.Signal)})
		case <-stop:
		}
	}()
	var once sync.Once
	stopWatch := func() { once.Do(func() { close(stop); <-watched }) }
	defer stopWatch()

	ran, code, lost := false, 0, false
	err := r.lock.WithLock(ctx, func(fctx context.Context) error {
		stopWatch()
		if c, ok := context.Cause(ctx).(signalCause); ok {
			// The signal came as the lock was granted: release it, run nothing.
			code = 128 + int(c.sig)
			return nil
		}
		ran = true
		if verbose {
			fmt.Fprintf(r.stderr, "redislock: acquired %s (token %d)\n", r.lock.Key(), r.lock.Token())
		}
		code, lost = r.supervise(fctx)
		return nil
	})
	stopWatch()
	if !ran {
		return r.notRun(ctx, err, code, conflictCode, verbose)
	}
	if lost {
		return r.lostCode, nil
	}
	if errors.Is(err, redislock.ErrLockLost) {
		// The release found the hold gone: the child may have run part of
		// its time without the lock.
		fmt.Fprintf(r.stderr, "redislock: %s: %s (found at release, after COMMAND exited with code %d)\n",
			r.lock.Key(), lossText(err), code)
		return r.lostCode, nil
	}
	if err != nil {
		fmt.Fprintf(r.stderr, "redislock: %v\n", oneLine(err))
	} else if verbose {
		fmt.Fprintf(r.stderr, "redislock: released %s\n", r.lock.Key())
	}
	return code, nil
}

// notRun returns the exit code of a run whose child never started, after
// WithLock returned err.
func (r *runner) notRun(ctx context.Context, err error, code, conflictCode int, verbose bool) (int, error) {
	if c, ok := context.Cause(ctx).(signalCause); ok {
		if err == nil { // acquired and released at once
			return code, nil
		}
		return 128 + int(c.sig), fmt.Errorf("%s not acquired: %v", r.lock.Key(), c)
	}
	switch {
	case err == nil:
		return exitSoftware, errors.New("the lock was acquired but COMMAND did not run")
	case errors.Is(err, redislock.ErrWrongType), errors.Is(err, redislock.ErrLimitMismatch):
		return exitDataErr, err
	case errors.Is(err, redislock.ErrInvalidArgument):
		return exitUsage, usageError{err}
	case errors.Is(err, redislock.ErrNotAcquired) && errors.Is(err, context.DeadlineExceeded):
		if verbose {
			fmt.Fprintf(r.stderr, "redislock: %s is held by another owner: not acquired within --wait\n", r.lock.Key())
		}
		return conflictCode, nil
	}
	return exitUnavailable, err
}

// supervise runs the child while the lock is held; fctx is cancelled when
// the lock is lost. It returns the exit code and whether the lock was lost
// while the child ran. It returns once the child has exited and, after a
// loss, once its whole process group is gone or was sent SIGKILL.
func (r *runner) supervise(fctx context.Context) (code int, lost bool) {
	cmd := exec.Command(r.command[0], r.command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"REDISLOCK_NAME="+r.lock.Name(),
		"REDISLOCK_KEY="+r.lock.Key(),
		"REDISLOCK_OWNER="+r.lock.Owner(),
		"REDISLOCK_TOKEN="+strconv.FormatInt(r.lock.Token(), 10),
	)
	cmd.SysProcAttr = groupAttr()
	adoptOrphans()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(r.stderr, "redislock: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return exitNotFound, false
		}
		return exitCannotExec, false
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in cmd.ProcessState
		close(exited)
	}()

	var kill *time.Timer
	var killC <-chan time.Time
	defer func() {
		if kill != nil {
			kill.Stop()
		}
	}()
	loss := fctx.Done()
	for exited != nil {
		select {
		case <-exited:
			exited = nil
		case s := <-r.sigs:
			signalGroup(pgid, s)
		case <-loss:
			loss = nil
			r.lost(fctx, pgid)
			lost = true
			kill = time.NewTimer(r.grace)
			killC = kill.C
		case <-killC:
			signalGroup(pgid, syscall.SIGKILL)
			killC = nil
		}
	}
	if !lost && errors.Is(context.Cause(fctx), redislock.ErrLockLost) {
		// Lost as the child exited: the child may have outlived the lock.
		r.lost(fctx, pgid)
		lost = true
		kill = time.NewTimer(r.grace)
		killC = kill.C
	}
	if lost {
		r.reap(pgid, killC)
	}
	return exitCode(cmd.ProcessState), lost
}

// lost reports the loss and sends SIGTERM to the child's process group.
func (r *runner) lost(fctx context.Context, pgid int) {
	signalGroup(pgid, syscall.SIGTERM)
	fmt.Fprintf(r.stderr, "redislock: %s: %s; sent SIGTERM to process group %d, SIGKILL in %v\n",
		r.lock.Key(), lossText(context.Cause(fctx)), pgid, r.grace)
}

// lossText is the loss cause of err, which matches ErrLockLost, without
// the package prefix: "lock lost: <why>".
func lossText(err error) string {
	for {
		j, ok := err.(interface{ Unwrap() []error })
		if !ok {
			break
		}
		var next error
		for _, e := range j.Unwrap() {
			if errors.Is(e, redislock.ErrLockLost) {
				next = e
				break
			}
		}
		if next == nil {
			break
		}
		err = next
	}
	return strings.TrimPrefix(err.Error(), "redislock: ")
}

// reap waits, after a loss, until the child's process group is empty,
// sending it SIGKILL when killC fires (nil: already sent). Processes that
// the child left behind must not outlive the lock either.
func (r *runner) reap(pgid int, killC <-chan time.Time) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	// After SIGKILL, allow the kernel and init a moment to remove them.
	var settle <-chan time.Time
	if killC == nil {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		settle = t.C
	}
	for reapGroup(pgid); groupAlive(pgid); reapGroup(pgid) {
		select {
		case <-tick.C:
		case <-killC:
			signalGroup(pgid, syscall.SIGKILL)
			killC = nil
			t := time.NewTimer(time.Second)
			defer t.Stop()
			settle = t.C
		case <-settle:
			fmt.Fprintf(r.stderr, "redislock: process group %d still has processes after SIGKILL\n", pgid)
			return
		}
	}
}

// exitCode is the exit code a shell gives for a child that ended in ps.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
