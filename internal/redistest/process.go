package redistest

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
	startTimeout = 10 * time.Second      // for a server to answer, or a port to come free
	pollInterval = 20 * time.Millisecond // between readiness probes
	portAttempts = 5                     // free ports tried when one is taken before the server binds it
)

// errPortInUse means redis-server exited because its port was taken.
var errPortInUse = errors.New("port in use")

func lookPath() (string, error) { return exec.LookPath("redis-server") }

// process is a running redis-server. Its waiter goroutine ends when the
// process exits; kill makes it exit and waits for that.
type process struct {
	cmd    *exec.Cmd
	port   int
	addr   string
	dir    string
	exited chan struct{} // closed once cmd.Wait has returned
}

// startFreePort starts redis-server in dir on a free loopback port. It
// blocks until the server answers.
func startFreePort(dir string, args []string) (*process, error) {
	var err error
	for range portAttempts {
		var port int
		if port, err = freePort(); err != nil {
			return nil, err
		}
		var p *process
		if p, err = start(dir, port, args); !errors.Is(err, errPortInUse) {
			return p, err
		}
	}
	return nil, err
}

// startPort starts redis-server in dir on port, retrying while the port is
// in use, for up to startTimeout. It blocks until the server answers.
func startPort(dir string, port int, args []string) (*process, error) {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p, err := start(dir, port, args)
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			return p, err
		}
		<-tick.C
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start starts redis-server in dir on port and waits until it answers. On
// error no process is left running.
func start(dir string, port int, extra []string) (*process, error) {
	bin, err := lookPath()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "redis.log")
	if err := os.Remove(logFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// Output before the log file is opened, such as config errors, goes here.
	out, err := os.Create(filepath.Join(dir, "redis.out"))
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--protected-mode", "no",
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", logFile,
		"--enable-debug-command", "yes",
	}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out // an *os.File: no copying goroutines
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	p := &process{
		cmd:    cmd,
		port:   port,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    dir,
		exited: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// waitReady polls until the server answers as this process, it exits, or
// startTimeout passes.
func (p *process) waitReady() error {
	deadline := time.NewTimer(startTimeout)
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
			err := fmt.Errorf("redis-server on %s exited (%v)%s", p.addr, p.cmd.ProcessState, tail)
			if strings.Contains(tail, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-deadline.C:
			return fmt.Errorf("redis-server on %s did not answer within %v: %v%s", p.addr, startTimeout, err, p.logTail())
		case <-tick.C:
		}
	}
}

// probe sends INFO server and checks that the reply comes from this process,
// not from another server that took the port first.
func (p *process) probe() error {
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

// kill sends SIGCONT, in case the process is stopped, and SIGKILL, then
// waits for it to exit. It may be called again.
func (p *process) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// signal sends sig to the process, failing if it has exited.
func (p *process) signal(sig os.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("redis-server on %s has exited (%v)%s", p.addr, p.cmd.ProcessState, p.logTail())
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// waitStopped polls until the process is stopped by a signal, for up to
// startTimeout. Without /proc (not Linux) it returns nil at once.
func (p *process) waitStopped() error {
	stat := filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "stat")
	deadline := time.NewTimer(startTimeout)
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
			return fmt.Errorf("redis-server on %s exited (%v)", p.addr, p.cmd.ProcessState)
		case <-deadline.C:
			return fmt.Errorf("redis-server on %s did not stop within %v", p.addr, startTimeout)
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the server's output and log file,
// formatted to follow an error message.
func (p *process) logTail() string {
	const maxLines = 20
	var sb strings.Builder
	for _, name := range []string{"redis.out", "redis.log"} {
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
