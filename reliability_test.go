package redislock_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/history"
	"github.com/redislock/redislock/internal/redisproc"
	"github.com/redislock/redislock/internal/redistest"
)

// The reliability scenarios of RELIABILITY.md. Each runs against private
// redis-server processes, bounded in count and time, and reports its figures
// with t.Logf (lines starting "reliability:", shown by go test -v) and, when
// $REDISLOCK_RELIABILITY_REPORT names a file, as JSON lines appended to it.
// By default they are sized for CI; -soak or REDISLOCK_SOAK=1 runs them at
// full length.

var soakFlag = flag.Bool("soak", false, "run the reliability scenarios at soak length (or set REDISLOCK_SOAK=1)")

// envReport names a file to which the scenarios append their figures.
const envReport = "REDISLOCK_RELIABILITY_REPORT"

func soak() bool {
	if *soakFlag {
		return true
	}
	on, _ := strconv.ParseBool(os.Getenv("REDISLOCK_SOAK"))
	return on
}

// sized returns ci, or soaked in soak mode.
func sized[T any](ci, soaked T) T {
	if soak() {
		return soaked
	}
	return ci
}

// figures are what a scenario reports.
type figures struct {
	Scenario  string        `json:"scenario"`
	Mode      string        `json:"mode"` // "ci" or "soak"
	Trials    int           `json:"trials"`
	Sections  int64         `json:"critical_sections"`
	Overlaps  int           `json:"overlaps"`
	MaxDetect time.Duration `json:"max_detection_latency_ns"`
	Notes     string        `json:"notes,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
}

func report(t *testing.T, f figures) {
	t.Helper()
	f.Mode = sized("ci", "soak")
	t.Logf("reliability: %s [%s]: trials=%d critical_sections=%d overlaps=%d max_detection_latency=%v elapsed=%v %s",
		f.Scenario, f.Mode, f.Trials, f.Sections, f.Overlaps, f.MaxDetect.Round(time.Millisecond), f.Elapsed.Round(time.Millisecond), f.Notes)
	path := os.Getenv(envReport)
	if path == "" {
		return
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("report: %v", err)
		return
	}
	defer file.Close()
	if _, err := file.Write(append(b, '\n')); err != nil {
		t.Errorf("report: %v", err)
	}
}

// accountFor checks, when t ends, that everything t opened after this call
// was closed: no goroutine left running and no client connection left on
// srv. Call it right after starting srv, so the check runs after the
// test's own cleanups and before srv is stopped.
func accountFor(t *testing.T, srv *redistest.Server) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// Idle pub/sub connections and heartbeats linger for a while by
		// design; wait them out, within bounds.
		deadline := time.Now().Add(15 * time.Second)
		n := srv.ClientCount(t)
		for n != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			n = srv.ClientCount(t)
		}
		if n != 0 {
			t.Errorf("%d client connections left open:\n%s", n, srv.ClientList(t))
		}
		var err error
		for time.Now().Before(deadline) {
			// A restarted server has a new process-waiter goroutine.
			if err = goleak.Find(ignore, goleak.IgnoreAnyFunction(redisproc.WaiterFunction)); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("goroutines left running: %v", err)
		}
		// Scenario 7's figures, for every scenario.
		t.Logf("reliability: 7 accounting after %s: client_connections_left=%d goroutines_leaked=%v", t.Name(), n, err != nil)
	})
}

// A lostWatch stamps the moment a lost signal fires.
type lostWatch struct {
	at   atomic.Int64 // history.Now when seen; 0 until then
	stop chan struct{}
	done chan struct{}
}

func watchLost(lost <-chan struct{}) *lostWatch {
	w := &lostWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		select {
		case <-lost:
			w.at.Store(history.Now())
		case <-w.stop:
		}
	}()
	return w
}

// wait waits up to d for the loss and stops the watch. It returns the time
// the loss was seen, or 0.
func (w *lostWatch) wait(d time.Duration) int64 {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		close(w.stop)
		<-w.done
	}
	return w.at.Load()
}

// A heldLock is a hold taken by WithLock whose function waits until told to
// return or until its context is done.
type heldLock struct {
	lock    *redislock.Lock
	ctx     context.Context // the context WithLock gave the function
	lost    <-chan struct{}
	watch   *lostWatch
	release chan struct{}
	done    chan error // WithLock's result
}

// holdLock acquires l with WithLock on a goroutine of its own and returns
// once the function runs, or WithLock's error if it fails within d. On
// failure the goroutine has ended.
func holdLock(l *redislock.Lock, d time.Duration) (*heldLock, error) {
	h := &heldLock{lock: l, release: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	inside := make(chan struct{})
	go func() {
		h.done <- l.WithLock(ctx, func(ctx context.Context) error {
			h.ctx, h.lost = ctx, l.Lost()
			h.watch = watchLost(h.lost)
			close(inside)
			select {
			case <-ctx.Done():
			case <-h.release:
			}
			return nil
		})
		cancel()
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-inside:
		return h, nil
	case err := <-h.done:
		return nil, fmt.Errorf("WithLock: %w", err)
	case <-t.C:
		cancel()
		close(h.release)
		err := <-h.done
		if h.watch != nil {
			h.watch.wait(0)
		}
		return nil, fmt.Errorf("WithLock did not get in within %v: %v", d, err)
	}
}

// live reports whether the hold is live now: its lost signal has not fired.
// (It is never released before the test says so.) It also reports a lost
// signal and a context that disagree.
func (h *heldLock) live() (bool, error) {
	select {
	case <-h.lost:
		if h.ctx.Err() == nil {
			return false, fmt.Errorf("Lost closed but the WithLock context is not cancelled")
		}
		return false, nil
	default:
		return true, nil
	}
}

// finish makes the function return and waits up to d for WithLock, and for
// the watch. It returns the moment the loss was seen (0 if it was not) and
// WithLock's error.
func (h *heldLock) finish(d time.Duration) (int64, error) {
	close(h.release)
	t := time.NewTimer(d)
	defer t.Stop()
	var err error
	select {
	case err = <-h.done:
	case <-t.C:
		err = fmt.Errorf("WithLock did not return within %v", d)
	}
	return h.watch.wait(0), err
}

// maxDur returns the largest of ds.
func maxDur(ds ...time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// durs formats durations for a report.
func durs(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(s, ",")
}
