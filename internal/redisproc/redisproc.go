// Package redisproc runs one redis-server or redis-sentinel process on
// loopback, for the test helpers in packages redistest and clustertest.
//
// [StartFreePort] and [StartPort] start a process and block until it
// answers INFO with its own process ID, so that a server that took the port
// first is not mistaken for it. Each [Process] has one waiter goroutine,
// which ends when the process exits; [Process.Kill] makes it exit and waits
// for that. The process's files stay in its directory. [RequireBinaries]
// skips or fails a test that needs programs missing from PATH.
package redisproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// StartTimeout bounds the wait for a process to answer, for a port to
	// come free ([StartPort]) and for a process to stop ([Process.WaitStopped]).
	StartTimeout = 10 * time.Second

	// OutFile, in the process's directory, receives its standard output and
	// error: what it writes before it opens its log file, such as config
	// errors.
	OutFile = "redis.out"

	// LogFile, in the process's directory, is where the process should log
	// (see [ServerArgs]): error messages quote its last lines, and tell a
	// port that was taken by "Address already in use" in it.
	LogFile = "redis.log"

	pollInterval = 20 * time.Millisecond // between readiness probes
	portRetry    = 50 * time.Millisecond // between StartPort's attempts
)

// ErrPortInUse means a process exited because its port was taken.
var ErrPortInUse = errors.New("port in use")

// Spec describes a process to start.
type Spec struct {
	// Dir is the process's working directory, which must exist. Each
	// attempt to start the process creates [OutFile] in it anew and removes
	// a [LogFile] left by an earlier process, so that error messages quote
	// this process's output only.
	Dir string

	// Command returns the program and arguments of a process that is to
	// listen on 127.0.0.1:port. It is called once per attempt.
	Command func(port int) (bin string, args []string, err error)
}

// WaiterFunction is the function that a process's waiter goroutine runs
// until the process exits, for leak checks that must ignore the waiters of
// servers they leave running (goleak.IgnoreAnyFunction).
const WaiterFunction = "github.com/redislock/redislock/internal/redisproc.(*Process).wait"

// ServerArgs returns the arguments of a redis-server that listens on
// 127.0.0.1:port with protected mode and persistence off, keeps its files in
// dir, logs to [LogFile] there and accepts DEBUG.
func ServerArgs(dir string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, LogFile),
		"--enable-debug-command", "yes",
	}
}

// FreePort returns a loopback port that the kernel picks as free. Nothing
// holds it once FreePort returns.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// StartFreePort starts the process that spec describes on a port from pick,
// such as [FreePort], trying up to attempts ports while each is taken before
// the process binds it. It blocks until the process answers; on error no
// process is left running.
func StartFreePort(spec Spec, attempts int, pick func() (int, error)) (*Process, error) {
	err := errors.New("redisproc: no port tried")
	for range attempts {
		var port int
		if port, err = pick(); err != nil {
			return nil, err
		}
		var p *Process
		if p, err = start(spec, port); !errors.Is(err, ErrPortInUse) {
			return p, err
		}
	}
	return nil, err
}

// StartPort starts the process that spec describes on port, retrying while
// the port is in use, for up to [StartTimeout]. It blocks until the process
// answers; on error no process is left running.
func StartPort(spec Spec, port int) (*Process, error) {
	deadline := time.Now().Add(StartTimeout)
	tick := time.NewTicker(portRetry)
	defer tick.Stop()
	for {
		p, err := start(spec, port)
		if !errors.Is(err, ErrPortInUse) || time.Now().After(deadline) {
			return p, err
		}
		<-tick.C
	}
}

// Process is a running redis-server or redis-sentinel. Its methods may be
// called from any goroutine.
type Process struct {
	cmd    *exec.Cmd
	port   int
	addr   string
	dir    string
	exited chan struct{} // closed once cmd.Wait has returned
}

// start starts the process on port and waits until it answers. An error wraps [ErrPortInUse] if
// the process exited because port was taken. On error no process is left
// running.
func start(spec Spec, port int) (*Process, error) {
	bin, args, err := spec.Command(port)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(filepath.Join(spec.Dir, LogFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	out, err := os.Create(filepath.Join(spec.Dir, OutFile))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = out, out // an *os.File: no copying goroutines
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	p := &Process{
		cmd:    cmd,
		port:   port,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    spec.Dir,
		exited: make(chan struct{}),
	}
	go p.wait()
	if err := p.waitReady(); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// wait reaps the process when it exits; it runs on the process's waiter
// goroutine, which Kill waits for.
func (p *Process) wait() {
	_ = p.cmd.Wait()
	close(p.exited)
}

// Addr returns the process's "127.0.0.1:port".
func (p *Process) Addr() string { return p.addr }

// Port returns the port the process listens on.
func (p *Process) Port() int { return p.port }

// name returns the program's name, for error messages.
func (p *Process) name() string { return filepath.Base(p.cmd.Path) }

// waitReady polls until the process answers as itself, it exits, or
// StartTimeout passes.
func (p *Process) waitReady() error {
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := p.probe()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			tail := p.logTail()
			err := fmt.Errorf("%s on %s exited (%v)%s", p.name(), p.addr, p.cmd.ProcessState, tail)
			if strings.Contains(tail, "Address already in use") {
				err = fmt.Errorf("%w: %w", ErrPortInUse, err)
			}
			return err
		case <-deadline.C:
			return fmt.Errorf("%s on %s did not answer within %v: %v%s", p.name(), p.addr, StartTimeout, err, p.logTail())
		case <-tick.C:
		}
	}
}

// probe sends INFO server and checks that the reply comes from this process,
// not from another one that took the port first. Sentinels answer it too.
func (p *Process) probe() error {
	conn, err := net.DialTimeout("tcp", p.addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil {
		return fmt.Errorf("INFO replied %q", strings.TrimSpace(line))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(p.cmd.Process.Pid) + "\r\n"
	if !bytes.Contains(info, []byte(want)) {
		return fmt.Errorf("%s is answered by another process", p.addr)
	}
	return nil
}

// Kill sends SIGCONT, in case the process is stopped, and SIGKILL, then
// waits for it to exit, at which point its waiter goroutine ends. Its files
// stay. It may be called again.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Signal sends sig to the process, failing if it has exited. It does not
// wait for the process to act on it.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s on %s has exited (%v)%s", p.name(), p.addr, p.cmd.ProcessState, p.logTail())
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// WaitStopped polls until the process is stopped by a signal, for up to
// [StartTimeout]. Without /proc (not Linux) it returns nil at once.
func (p *Process) WaitStopped() error {
	stat := filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "stat")
	deadline := time.NewTimer(StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(stat)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		// The state follows the parenthesised command name: "pid (comm) T ...".
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) {
			if s := b[i+2]; s == 'T' || s == 't' {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s on %s exited (%v)", p.name(), p.addr, p.cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("%s on %s did not stop within %v", p.name(), p.addr, StartTimeout)
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the process's output and log file,
// formatted to follow an error message.
func (p *Process) logTail() string {
	const maxLines = 20
	var sb strings.Builder
	for _, name := range []string{OutFile, LogFile} {
		b, err := os.ReadFile(filepath.Join(p.dir, name))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err != nil || lines[0] == "" {
			continue
		}
		if len(lines) > maxLines {
			lines = lines[len(lines)-maxLines:]
		}
		fmt.Fprintf(&sb, "\n--- %s ---\n%s", filepath.Join(p.dir, name), strings.Join(lines, "\n"))
	}
	return sb.String()
}
