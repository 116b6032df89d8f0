package clustertest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	startTimeout = 10 * time.Second      // for a process to answer
	readyPoll    = 20 * time.Millisecond // between readiness probes
	portAttempts = 10                    // ports tried when one is taken before the process binds it

	// Ports, bus ports included, are picked below Linux's default ephemeral
	// range (32768 and up), so that outgoing connections, which take their
	// local ports from that range, never hold a port a node is to listen on.
	portMin, portMax = 10000, 22700
	busPortOffset    = 10000 // Redis Cluster's default bus port is port+10000
)

// errPortInUse means a process exited because its port was taken.
var errPortInUse = errors.New("port in use")

// process is a running redis-server or redis-sentinel. Its waiter goroutine
// ends when the process exits; kill makes it exit and waits for that.
type process struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	exited chan struct{} // closed once cmd.Wait has returned
}

// commandFunc returns the command line of a process that is to listen on port.
type commandFunc func(port int) (bin string, args []string, err error)

// startFreePort starts the process that command describes, in dir, on a
// port that is free when picked, and with port+busPortOffset free too if
// bus is set. It blocks until the process answers; on error no process is
// left running.
func startFreePort(dir string, bus bool, command commandFunc) (*process, error) {
	var err error
	for range portAttempts {
		var (
			port int
			bin  string
			args []string
			p    *process
		)
		if port, err = pickPort(bus); err != nil {
			return nil, err
		}
		if bin, args, err = command(port); err != nil {
			return nil, err
		}
		if p, err = start(dir, port, bin, args); !errors.Is(err, errPortInUse) {
			return p, err
		}
	}
	return nil, err
}

// pickPort returns a random loopback port in [portMin, portMax) that can be
// bound now, and whose bus port can be too if bus is set.
func pickPort(bus bool) (int, error) {
	for range 200 {
		port := portMin + rand.IntN(portMax-portMin)
		if portFree(port) && (!bus || portFree(port+busPortOffset)) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port in [%d, %d)", portMin, portMax)
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// start runs bin with args in dir and waits until it answers on port. On
// error no process is left running.
func start(dir string, port int, bin string, args []string) (*process, error) {
	// Output before the log file is opened, such as config errors, goes here.
	out, err := os.Create(filepath.Join(dir, "redis.out"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out // an *os.File: no copying goroutines
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	p := &process{
		cmd:    cmd,
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

// waitReady polls until the process answers, it exits, or startTimeout
// passes.
func (p *process) waitReady() error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		err := p.probe()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			tail := p.logTail()
			err := fmt.Errorf("%s on %s exited (%v)%s", filepath.Base(p.cmd.Path), p.addr, p.cmd.ProcessState, tail)
			if strings.Contains(tail, "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-deadline.C:
			return fmt.Errorf("%s on %s did not answer within %v: %v%s", filepath.Base(p.cmd.Path), p.addr, startTimeout, err, p.logTail())
		case <-tick.C:
		}
	}
}

// probe sends INFO server and checks that the reply comes from this process,
// not from another one that took the port first. Sentinels answer it too.
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

// kill sends SIGKILL and waits for the process to exit. It may be called
// again.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// logTail returns the last lines of the process's output and log file,
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
