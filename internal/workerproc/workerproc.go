// Package workerproc runs a test binary's own code in worker processes: the
// binary re-executes itself, running only one test function, which finds
// out from its environment that it is a worker and what to do.
//
// In the test file:
//
//	func TestWorker(t *testing.T) {
//		cfg, ok := workerproc.Config(t)
//		if !ok {
//			return // not a worker: nothing to test
//		}
//		... // do the work that cfg describes, write results to a file it names
//	}
//
//	procs := workerproc.Start(t, "TestWorker", 3, func(i int) any { return cfg{...} })
//	for _, p := range procs { require.NoError(t, p.Wait(time.Minute)) }
package workerproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// envConfig carries a worker's configuration as JSON. Its presence makes a
// process a worker.
const envConfig = "REDISLOCK_WORKERPROC_CONFIG"

// Config reports whether this process is a worker and, if so, decodes its
// configuration into a value of type T. A worker whose configuration does
// not decode fails tb.
func Config[T any](tb testing.TB) (T, bool) {
	tb.Helper()
	var cfg T
	s, ok := os.LookupEnv(envConfig)
	if !ok {
		return cfg, false
	}
	if err := json.Unmarshal([]byte(s), &cfg); err != nil {
		tb.Fatalf("workerproc: config %q: %v", s, err)
	}
	return cfg, true
}

// A Proc is a running or finished worker process.
type Proc struct {
	cmd    *exec.Cmd
	out    string        // file with its stdout and stderr
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's result, set before exited closes
}

// Start starts n workers, each running only the test function named test
// (an exact name) with the configuration config(i), encoded as JSON. A
// worker process is killed if the process that started it dies (on Linux),
// and tb.Cleanup kills every worker still running and waits for it.
func Start(tb testing.TB, test string, n int, config func(i int) any) []*Proc {
	tb.Helper()
	bin, err := os.Executable()
	if err != nil {
		tb.Fatalf("workerproc: %v", err)
	}
	dir := tb.TempDir()
	procs := make([]*Proc, 0, n)
	tb.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
	})
	for i := range n {
		cfg, err := json.Marshal(config(i))
		if err != nil {
			tb.Fatalf("workerproc: config of worker %d: %v", i, err)
		}
		p, err := start(bin, test, filepath.Join(dir, fmt.Sprintf("worker-%d.out", i)), string(cfg))
		if err != nil {
			tb.Fatalf("workerproc: worker %d: %v", i, err)
		}
		procs = append(procs, p)
	}
	return procs
}

func start(bin, test, outPath, cfg string) (*Proc, error) {
	out, err := os.Create(outPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-test.run=^"+test+"$", "-test.count=1", "-test.v=true")
	cmd.Env = append(os.Environ(), envConfig+"="+cfg)
	cmd.Stdout, cmd.Stderr = out, out // an *os.File: no copying goroutines
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	out.Close()
	if err != nil {
		return nil, err
	}
	p := &Proc{cmd: cmd, out: outPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Wait waits for the worker to exit, for up to d, and kills it after that.
// It returns nil if the worker exited with status 0, and otherwise an error
// with the end of its output.
func (p *Proc) Wait(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		return fmt.Errorf("worker %d did not exit within %v, killed%s", p.cmd.Process.Pid, d, p.tail())
	}
	if p.err != nil {
		return fmt.Errorf("worker %d: %w%s", p.cmd.Process.Pid, p.err, p.tail())
	}
	return nil
}

// Output returns what the worker printed so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.out)
	return string(b)
}

// kill kills the worker, if it is still running, and waits for it to exit.
func (p *Proc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return // it cannot be signalled: it has exited, and Wait will return
	}
	<-p.exited
}

func (p *Proc) tail() string {
	const maxLines = 30
	lines := strings.Split(strings.TrimSpace(p.Output()), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return "\n--- worker output ---\n" + strings.Join(lines, "\n")
}
