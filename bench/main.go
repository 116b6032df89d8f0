// Command bench compares github.com/redislock/redislock with its peers on a
// Redis server of its own: uncontended latency, allocations and server time,
// parallel throughput, contention on one key (in one process and across
// processes), many held locks under renewal, what unique names leave on
// the server, and this library's fair lock, semaphore and readers-writer
// lock under contention. It prints a Markdown report and writes it, with a PNG chart,
// to the -out directory. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		err = workerMain(ctx, os.Args[2:])
	} else {
		err = run(ctx)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "short run (about two minutes): fewer ops, 1 s windows, 2,000 held locks for 6 s, 10,000 names")
	only := fs.String("only", "", "comma-separated contenders or libraries to run (e.g. redislock,raw or bsm/tuned); default all")
	out := fs.String("out", "results", "directory for <date>.md, latest.md and latest.png")
	scen := fs.String("scenarios", "1,2,3,4,6,7", "scenarios to run: 1 uncontended, 2 parallel, 3 contention, 4 held locks, 5 unique names (see -names), 6 semaphore, 7 readers-writer lock")
	names := fs.Bool("names", false, "also run scenario 5: -n unique names acquired and released once each, keys and memory left (-scenarios 5 runs it alone)")
	nNames := fs.Int("n", 0, "names for scenario 5 (default 100000; quick: 10000)")
	addr := fs.String("addr", "", "Redis to use instead of starting redis-server; it is FLUSHALLed and its stats reset, so never a server whose data matters")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run . [-quick] [-only name,...] [-out dir] [-scenarios 1,2,3,4,5,6,7] [-names [-n N]] [-addr host:port]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	scenarios, err := parseScenarios(*scen)
	if err != nil {
		return err
	}
	cs, err := selectContenders(*only)
	if err != nil {
		return err
	}
	if *names {
		scenarios[5] = true
	}
	set := defaultSettings(*quick)
	if *nNames < 0 {
		return fmt.Errorf("-n %d: not a number of names", *nNames)
	}
	if *nNames > 0 {
		set.names = *nNames
	}

	started := time.Now()
	loadStart := loadAverage()
	srv, err := startServer(ctx, *addr)
	if err != nil {
		return err
	}
	defer srv.stop()
	desc := "own redis-server on " + srv.addr + " (--save \"\" --appendonly no)"
	if !srv.own {
		desc = "-addr " + srv.addr
	}
	logf("redis %s at %s", srv.version(ctx), srv.addr)

	var mutexes, sems []contender
	for _, c := range cs {
		if c.sem {
			sems = append(sems, c)
		} else {
			mutexes = append(mutexes, c)
		}
	}
	r := &report{
		started: started, quick: *quick, set: set, scenarios: scenarios, contenders: mutexes, semContenders: sems,
		goVersion: runtime.Version(), platform: runtime.GOOS + "/" + runtime.GOARCH,
		cpus: runtime.NumCPU(), maxprocs: runtime.GOMAXPROCS(0),
		redis: srv.version(ctx), serverDesc: desc,
		module: libraryRevision(), deps: depVersions(), only: strings.TrimSpace(*only),
	}
	if len(os.Args) > 1 {
		r.args = " " + strings.Join(os.Args[1:], " ")
	}
	err = measure(ctx, srv, r)
	r.wall = time.Since(started)
	r.load = loadStart + " at the start, " + loadAverage() + " at the end"
	if err != nil {
		r.interrupted = err.Error()
	}
	md := r.markdown()
	fmt.Print(md)
	if err != nil {
		return fmt.Errorf("run incomplete, no files written: %w", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, name := range []string{started.Format("2006-01-02") + ".md", "latest.md"} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(md), 0o644); err != nil {
			return err
		}
	}
	if scenarios[3] {
		if err := writeChart(filepath.Join(*out, "latest.png"), r.contended); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	logf("wrote %s (wall time %v)", *out, time.Since(started).Round(100*time.Millisecond))
	return nil
}

// measure runs the chosen scenarios for every contender, in order, one at a
// time. It stops at the first error that is not a contender's own (the
// server gone, the run interrupted).
func measure(ctx context.Context, srv *server, r *report) error {
	set := r.set
	check := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return srv.alive()
	}
	if r.scenarios[1] {
		if err := check(); err != nil {
			return err
		}
		for _, fresh := range []bool{false, true} {
			if err := check(); err != nil {
				return err
			}
			rows := runUncontended(ctx, srv, r.contenders, set.uncontendedOps, fresh)
			for _, row := range rows {
				logf("1 uncontended  %-20s fresh %v: p50 %s server %s/op allocs/op %.1f %s",
					row.c.name, fresh, fmtDur(row.p50), fmtDur(row.serverPerOp), row.allocs, errNote(row.err))
			}
			if fresh {
				r.fresh = rows
			} else {
				r.uncontended = rows
			}
		}
	}
	if r.scenarios[2] {
		for _, c := range r.contenders {
			if err := check(); err != nil {
				return err
			}
			row := runParallel(ctx, srv, c, set.parallelGoroutines, set.parallelDur)
			logf("2 parallel     %-20s %s ops/s %s", c.name, fmtNum(row.opsPerSec), errNote(row.err))
			r.parallel = append(r.parallel, row)
		}
	}
	if r.scenarios[3] {
		if err := check(); err != nil {
			return err
		}
		rtt, err := measureRTT(ctx, srv)
		if err != nil {
			return fmt.Errorf("round trip: %w", err)
		}
		r.rtt = append(r.rtt, rtt)
		logf("3 round trip   PING p50 %s", fmtDur(rtt))
		type config struct {
			procs int
			hold  time.Duration
		}
		var configs []config
		for _, h := range set.holds {
			configs = append(configs, config{1, h})
		}
		if set.procs > 1 {
			configs = append(configs, config{set.procs, set.procHold})
		}
		for _, cfg := range configs {
			var rows []contendRow
			for _, c := range r.contenders {
				if err := check(); err != nil {
					return err
				}
				var row contendRow
				if cfg.procs == 1 {
					row = runContendInProc(ctx, srv, c, set.contendGoroutines, 1, cfg.hold, set.contendWindow)
				} else {
					row = runContendMultiProc(ctx, srv, c, cfg.procs, set.contendGoroutines, 1, cfg.hold, set.contendWindow)
				}
				logf("3 contention   %-20s %dp×%dg hold %v: %s acq/s, wait p99 %s, gap p50 %s %s",
					c.name, cfg.procs, set.contendGoroutines, cfg.hold, fmtNum(row.acqPerSec), fmtDur(row.wait.P99), fmtDur(row.gap.P50), errNote(row.err))
				rows = append(rows, row)
			}
			r.contended = append(r.contended, rows)
		}
		rtt, err = measureRTT(ctx, srv)
		if err != nil {
			return fmt.Errorf("round trip: %w", err)
		}
		r.rtt = append(r.rtt, rtt)
		logf("3 round trip   PING p50 %s", fmtDur(rtt))
	}
	if r.scenarios[4] {
		for _, c := range r.contenders {
			if c.noHeld {
				continue
			}
			if err := check(); err != nil {
				return err
			}
			n := set.heldPeerLocks
			if isSubject(c) {
				n = set.heldLocks
			}
			row := runHeld(ctx, srv, c, n, set.heldDur, set.heldLease, set.heldRenew)
			if row.applicable {
				logf("4 held         %-20s %d locks: goroutines +%d, %d requests, locks alive %d, keys %d/%d, held (client) %d, left %d %s",
					c.name, n, row.goroutines, row.reqs, row.locksAlive, row.keysAlive, row.keys, row.clientHeld, row.leftover, errNote(row.err))
			}
			r.held = append(r.held, row)
		}
	}
	if r.scenarios[5] {
		for _, c := range namesContenders(r.contenders, r.only) {
			if err := check(); err != nil {
				return err
			}
			row := runNames(ctx, srv, c, set.names)
			logf("5 names        %-20s %d/%d names in %v: keys %d → %d after %v, used_memory +%s → +%s %s",
				c.name, row.done, row.names, row.elapsed.Round(time.Millisecond), row.keysAfter, row.keysWindow,
				row.window.Round(time.Millisecond), fmtBytes(float64(row.growthAfter())), fmtBytes(float64(row.growthWindow())), errNote(row.err))
			r.names = append(r.names, row)
		}
	}
	if r.scenarios[6] {
		procsList := []int{1}
		if set.semProcs > 1 {
			procsList = append(procsList, set.semProcs)
		}
		for _, procs := range procsList {
			var rows []contendRow
			for _, c := range r.semContenders {
				if err := check(); err != nil {
					return err
				}
				var row contendRow
				if procs == 1 {
					row = runContendInProc(ctx, srv, c, set.semGoroutines, set.semLimit, set.semHold, set.contendWindow)
				} else {
					row = runContendMultiProc(ctx, srv, c, procs, set.semGoroutines, set.semLimit, set.semHold, set.contendWindow)
				}
				logf("6 semaphore    %-20s %dp×%dg limit %d: %s acq/s, wait p99 %s, max holders %d %s",
					c.name, procs, set.semGoroutines, set.semLimit, fmtNum(row.acqPerSec), fmtDur(row.wait.P99), row.maxHolders, errNote(row.err))
				rows = append(rows, row)
			}
			r.sem = append(r.sem, rows)
		}
	}
	if r.scenarios[7] {
		if err := check(); err != nil {
			return err
		}
		row := runRW(ctx, srv, set.rwReaders, set.rwWriters, set.rwHold, set.contendWindow)
		logf("7 rwlock       %d readers, %d writers: reader wait p99 %s, writer wait p99 %s max %s %s",
			row.readers, row.writers, fmtDur(row.readWait.P99), fmtDur(row.writeWait.P99), fmtDur(row.writeWait.Max), errNote(row.err))
		r.rw = append(r.rw, row)
	}
	return check()
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return "ERROR: " + err.Error()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

func parseScenarios(s string) (map[int]bool, error) {
	m := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 7 {
			return nil, fmt.Errorf("-scenarios: %q is not one of 1, 2, 3, 4, 5, 6, 7", f)
		}
		m[n] = true
	}
	if len(m) == 0 {
		return nil, errors.New("-scenarios: none chosen")
	}
	return m, nil
}

// libraryRevision describes the checkout of the library under test (the
// parent directory, through the replace directive), read with git.
func libraryRevision() string {
	rev, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "github.com/redislock/redislock (../, revision unknown)"
	}
	desc := "github.com/redislock/redislock at " + strings.TrimSpace(string(rev))
	st, err := exec.Command("git", "-C", "..", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		desc += " with uncommitted changes"
	}
	return desc + " (../ via replace)"
}

// depVersions lists the versions of the peer modules built in.
func depVersions() []string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	want := map[string]bool{
		"github.com/bsm/redislock": true, "github.com/go-redsync/redsync/v4": true,
		"github.com/redis/rueidis": true, "github.com/redis/go-redis/v9": true,
	}
	var out []string
	for _, d := range bi.Deps {
		if want[d.Path] {
			out = append(out, d.Path+" "+d.Version)
		}
	}
	return out
}

// loadAverage returns the 1-minute load average, which tells how much else
// ran on the machine's CPUs during the run.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}
