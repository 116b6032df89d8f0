package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// settings are the sizes of one run; -quick shrinks them.
type settings struct {
	uncontendedOps int

	parallelGoroutines int
	parallelDur        time.Duration

	contendGoroutines int
	contendWindow     time.Duration
	holds             []time.Duration // in-process runs, one per hold
	procs             int             // multi-process run: processes × contendGoroutines
	procHold          time.Duration

	heldLocks     int
	heldPeerLocks int // held locks for the other libraries (see runHeld)
	heldDur       time.Duration
	heldLease     time.Duration // TTL of each held lock
	heldRenew     time.Duration // renewal interval

	names int // names mode: unique names acquired and released once

	semLimit      int // semaphore scenario: permits
	semGoroutines int // per process
	semProcs      int // multi-process run: processes × semGoroutines
	semHold       time.Duration

	rwReaders, rwWriters int // readers-writer scenario: goroutines of each kind
	rwHold               time.Duration
}

func defaultSettings(quick bool) settings {
	s := settings{
		uncontendedOps:     3000,
		parallelGoroutines: 32,
		parallelDur:        2 * time.Second,
		contendGoroutines:  8,
		contendWindow:      3 * time.Second,
		holds:              []time.Duration{200 * time.Microsecond, 2 * time.Millisecond},
		procs:              3,
		procHold:           200 * time.Microsecond,
		heldLocks:          100_000,
		heldPeerLocks:      10_000,
		heldDur:            30 * time.Second,
		heldLease:          5 * time.Second, // rueidislock's defaults
		heldRenew:          2500 * time.Millisecond,
		names:              100_000,
		semLimit:           5,
		semGoroutines:      16,
		semProcs:           3,
		semHold:            200 * time.Microsecond,
		rwReaders:          8,
		rwWriters:          2,
		rwHold:             200 * time.Microsecond,
	}
	if quick {
		s.uncontendedOps = 500
		s.parallelDur = time.Second
		s.contendWindow = time.Second
		s.heldLocks = 2_000
		s.heldPeerLocks = 2_000
		s.heldDur = 6 * time.Second
		s.names = 10_000
	}
	return s
}

const (
	unlockTimeout = 5 * time.Second  // bound on every Unlock call
	maxSamples    = 1_000_000        // per run, a bound on memory
	warmOps       = 50               // uncontended warm-up
	setupTimeout  = 60 * time.Second // acquiring or releasing the held locks
)

func unlockCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), unlockTimeout)
}

// ---------------------------------------------------------------------------
// 1. Uncontended acquire + release

type uncontendedRow struct {
	c                    contender
	fresh                bool // a new name, and a new Mutex, for every op
	ops                  int
	lat                  dist          // over all runs
	p50                  time.Duration // median of the runs' p50s
	runs                 int
	allocs, bytes        float64 // per op
	reqsPerOp, cmdsPerOp float64
	serverPerOp          time.Duration // INFO commandstats usec of the commands sent, per op
	err                  error
}

// uncontendedRounds interleaves the contenders: each runs n/rounds ops in
// turn, rounds times, so that drift in the machine's speed (frequency,
// other load) spreads over all of them instead of favouring one. Each
// round is a run: the row's p50 is the median of the runs' p50s.
const uncontendedRounds = 6

// runUncontended measures one goroutine's Lock+Unlock, on one name per
// contender or, with fresh, on a new name each time with a Mutex made for
// it (NewMutex is inside the timing and the allocation count, as in code
// that makes a lock per entity). The server's command statistics are reset
// before each contender's turn, so its server time counts only that turn.
func runUncontended(ctx context.Context, srv *server, cs []contender, n int, fresh bool) []uncontendedRow {
	type state struct {
		f              Factory
		m              Mutex
		reqs           atomic.Int64
		cmds           cmdNames
		lat            []time.Duration
		p50s           []time.Duration
		mallocs, bytes uint64
		nreqs, calls   int64
		server         time.Duration
	}
	rows := make([]uncontendedRow, len(cs))
	states := make([]*state, len(cs))
	defer func() {
		for _, st := range states {
			if st != nil && st.f != nil {
				st.f.Close()
			}
		}
	}()
	mode := "reused"
	if fresh {
		mode = "fresh"
	}
	newMutex := func(st *state, name string) (Mutex, error) {
		if !fresh {
			return st.m, nil
		}
		return st.f.NewMutex(name)
	}
	for i, c := range cs {
		rows[i].c, rows[i].fresh = c, fresh
		st := &state{lat: make([]time.Duration, 0, n)}
		states[i] = st
		f, err := c.open(openOpts{addr: srv.addr, reqs: &st.reqs, cmds: &st.cmds})
		if err != nil {
			rows[i].err = err
			continue
		}
		st.f = f
		if st.m, rows[i].err = f.NewMutex("bench:uncontended:" + c.name); rows[i].err != nil {
			continue
		}
		for w := range warmOps {
			m, err := newMutex(st, fmt.Sprintf("bench:%s:warm:%s:%d", mode, c.name, w))
			if err == nil {
				err = lockUnlock(ctx, m)
			}
			if rows[i].err = err; err != nil {
				break
			}
		}
	}
	if err := srv.reset(ctx); err != nil {
		for i := range rows {
			rows[i].err = err
		}
		return rows
	}
	chunk := max(1, n/uncontendedRounds)
	names := make([]string, chunk)
	for round := 0; round < uncontendedRounds && ctx.Err() == nil; round++ {
		for i, st := range states {
			if rows[i].err != nil {
				continue
			}
			if fresh {
				for k := range names {
					names[k] = fmt.Sprintf("bench:fresh:%s:%d:%d", rows[i].c.name, round, k)
				}
			}
			if err := srv.admin.ConfigResetStat(ctx).Err(); err != nil {
				rows[i].err = err
				continue
			}
			r0 := st.reqs.Load()
			done := len(st.lat)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for k := range chunk {
				t0 := time.Now()
				m, err := newMutex(st, names[k])
				if err == nil {
					err = lockUnlock(ctx, m)
				}
				if err != nil {
					rows[i].err = err
					break
				}
				st.lat = append(st.lat, time.Since(t0))
			}
			runtime.ReadMemStats(&after)
			st.mallocs += after.Mallocs - before.Mallocs
			st.bytes += after.TotalAlloc - before.TotalAlloc
			st.nreqs += st.reqs.Load() - r0
			stats, err := srv.commandStats(ctx)
			if err != nil {
				rows[i].err = err
				continue
			}
			for _, cmd := range stats {
				st.calls += cmd.calls
			}
			st.server += serverTime(stats, &st.cmds)
			if len(st.lat) > done {
				run := append([]time.Duration(nil), st.lat[done:]...)
				st.p50s = append(st.p50s, summarize(run).P50)
			}
		}
	}
	for i, st := range states {
		if rows[i].err != nil || len(st.lat) == 0 {
			continue
		}
		ops := float64(len(st.lat))
		rows[i].ops = len(st.lat)
		rows[i].allocs = float64(st.mallocs) / ops
		rows[i].bytes = float64(st.bytes) / ops
		rows[i].reqsPerOp = float64(st.nreqs) / ops
		rows[i].cmdsPerOp = float64(st.calls) / ops
		rows[i].serverPerOp = time.Duration(float64(st.server) / ops)
		rows[i].lat = summarize(st.lat)
		rows[i].runs = len(st.p50s)
		rows[i].p50 = summarize(st.p50s).P50
	}
	return rows
}

// lockUnlock is one uncontended Lock and Unlock, both with ctx: a
// cancellable context without a deadline, as a caller's usually is.
func lockUnlock(ctx context.Context, m Mutex) error {
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := m.Unlock(ctx); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// 2. Parallel throughput on distinct keys

type parallelRow struct {
	c          contender
	goroutines int
	dur        time.Duration
	ops        int
	opsPerSec  float64
	lat        dist
	reqsPerOp  float64
	errs       int
	firstErr   string
	err        error
}

func runParallel(ctx context.Context, srv *server, c contender, g int, dur time.Duration) (row parallelRow) {
	row = parallelRow{c: c, goroutines: g, dur: dur}
	var reqs atomic.Int64
	f, err := c.open(openOpts{addr: srv.addr, reqs: &reqs})
	if err != nil {
		row.err = err
		return row
	}
	defer f.Close()
	ms := make([]Mutex, g)
	for i := range ms {
		if ms[i], err = f.NewMutex(fmt.Sprintf("bench:par:%d", i)); err != nil {
			row.err = err
			return row
		}
	}
	if row.err = warmParallel(ctx, ms); row.err != nil {
		return row
	}
	if row.err = srv.reset(ctx); row.err != nil {
		return row
	}
	r0 := reqs.Load()
	start := time.Now()
	end := start.Add(dur)
	// Calls in flight at the end may finish; the deadline only bounds them.
	opCtx, cancel := context.WithDeadline(ctx, end.Add(unlockTimeout))
	defer cancel()
	perG := maxSamples / g
	lats := make([][]time.Duration, g)
	errs := make([]int, g)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := ms[i]
			for time.Now().Before(end) && opCtx.Err() == nil {
				t0 := time.Now()
				err := m.Lock(opCtx)
				if err == nil {
					uctx, ucancel := unlockCtx()
					err = m.Unlock(uctx)
					ucancel()
				}
				if err != nil {
					errs[i]++
					firstErr.CompareAndSwap(nil, err.Error())
					sleepCtx(opCtx, time.Millisecond)
					continue
				}
				if len(lats[i]) < perG {
					lats[i] = append(lats[i], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for i := range g {
		all = append(all, lats[i]...)
		row.errs += errs[i]
	}
	row.ops = len(all)
	row.opsPerSec = float64(row.ops) / elapsed.Seconds()
	row.lat = summarize(all)
	if row.ops > 0 {
		row.reqsPerOp = float64(reqs.Load()-r0) / float64(row.ops)
	}
	if v, ok := firstErr.Load().(string); ok {
		row.firstErr = v
	}
	return row
}

// warmParallel locks and unlocks every mutex once, all at the same time, so
// that the client has its connections open before measuring.
func warmParallel(ctx context.Context, ms []Mutex) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := m.Lock(c); err != nil {
				errs[i] = fmt.Errorf("warm-up lock: %w", err)
				return
			}
			uctx, ucancel := unlockCtx()
			defer ucancel()
			if err := m.Unlock(uctx); err != nil {
				errs[i] = fmt.Errorf("warm-up unlock: %w", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// ---------------------------------------------------------------------------
// 3. Contention on one key

// contendSpec is one contention run of one process; a worker process gets
// it as JSON.
type contendSpec struct {
	Contender  string        `json:"contender"`
	Addr       string        `json:"addr"`
	Key        string        `json:"key"`
	Goroutines int           `json:"goroutines"`
	Hold       time.Duration `json:"hold"`
	Window     time.Duration `json:"window"`
	Limit      int           `json:"limit,omitempty"` // holders allowed at once: 0 or 1 for a mutex
	Shm        string        `json:"shm,omitempty"`   // shared state (multi-process)
}

// limit is how many holders the lock under test admits at once.
func (s contendSpec) limit() int { return max(1, s.Limit) }

// contendSample is what one process measured. Durations are in ns.
type contendSample struct {
	Acq         []int   `json:"acq"`   // successful Locks per goroutine
	Waits       []int64 `json:"waits"` // Lock call start → return, successful calls
	Gaps        []int64 `json:"gaps,omitempty"`
	HoldSum     int64   `json:"hold_sum"`
	Cut         int     `json:"cut"`       // Lock calls still waiting when the window closed
	CutWaits    []int64 `json:"cut_waits"` // how long those had waited, lower bounds
	Fails       int     `json:"fails"`     // Lock calls that failed inside the window
	UnlockFails int     `json:"unlock_fails"`
	FirstErr    string  `json:"first_err,omitempty"`
	Violations  int     `json:"violations"`  // acquisitions while limit holders were counted already
	MaxHolders  int     `json:"max_holders"` // most holders counted at once, this one included
	Requests    int64   `json:"requests"`
	Elapsed     int64   `json:"elapsed"`
}

// contend runs spec.Goroutines goroutines that take turns on spec.Key for
// spec.Window. ready is called after the warm-up and returns the start of
// the window. The holders are counted in st, shared with the other
// processes of the run; for a mutex each acquisition also records the time
// since the previous holder started its Unlock, on the wall clock, which
// all processes of one machine share.
func contend(ctx context.Context, f Factory, spec contendSpec, st *sharedState, reqs *atomic.Int64, ready func() (time.Time, error)) (contendSample, error) {
	var s contendSample
	g := spec.Goroutines
	limit := int32(spec.limit())
	gaps := limit == 1
	ms := make([]Mutex, g)
	warm := make([]Mutex, g)
	for i := range ms {
		var err error
		if ms[i], err = f.NewMutex(spec.Key); err != nil {
			return s, err
		}
		if warm[i], err = f.NewMutex(fmt.Sprintf("%s:warm:%d", spec.Key, i)); err != nil {
			return s, err
		}
	}
	if err := warmParallel(ctx, warm); err != nil {
		return s, err
	}
	start, err := ready()
	if err != nil {
		return s, err
	}
	r0 := reqs.Load()
	sleepCtx(ctx, time.Until(start))
	end := start.Add(spec.Window)
	winCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var (
		firstErr atomic.Value
		wg       sync.WaitGroup
	)
	perG := maxSamples / g
	type local struct {
		acq, cut, fails, unlockFails, violations int
		maxHolders                               int32
		holdSum                                  time.Duration
		waits, cutWaits, gaps                    []int64
	}
	locals := make([]local, g)
	for i := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, l := ms[i], &locals[i]
			for time.Now().Before(end) {
				t0 := time.Now()
				err := m.Lock(winCtx)
				t1 := time.Now()
				if err != nil {
					if winCtx.Err() != nil {
						l.cut++
						l.cutWaits = append(l.cutWaits, int64(t1.Sub(t0)))
						return
					}
					l.fails++
					firstErr.CompareAndSwap(nil, err.Error())
					sleepCtx(winCtx, time.Millisecond)
					continue
				}
				n := st.holders.Add(1)
				if n > limit {
					l.violations++
				}
				l.maxHolders = max(l.maxHolders, n)
				l.acq++
				if len(l.waits) < perG {
					l.waits = append(l.waits, int64(t1.Sub(t0)))
				}
				if gaps {
					// Wall clock, for one clock across processes.
					if rel := st.lastRel.Load(); rel != 0 && len(l.gaps) < perG {
						if d := t1.UnixNano() - rel; d >= 0 {
							l.gaps = append(l.gaps, d)
						}
					}
				}
				time.Sleep(spec.Hold)
				h := time.Now()
				l.holdSum += h.Sub(t1)
				if gaps {
					st.lastRel.Store(h.UnixNano())
				}
				st.holders.Add(-1)
				uctx, ucancel := unlockCtx()
				if err := m.Unlock(uctx); err != nil {
					l.unlockFails++
					firstErr.CompareAndSwap(nil, "unlock: "+err.Error())
				}
				ucancel()
			}
		}()
	}
	wg.Wait()
	s.Elapsed = int64(spec.Window)
	s.Requests = reqs.Load() - r0
	for _, l := range locals {
		s.Acq = append(s.Acq, l.acq)
		s.Waits = append(s.Waits, l.waits...)
		s.Gaps = append(s.Gaps, l.gaps...)
		s.Cut += l.cut
		s.CutWaits = append(s.CutWaits, l.cutWaits...)
		s.Fails += l.fails
		s.UnlockFails += l.unlockFails
		s.Violations += l.violations
		s.MaxHolders = max(s.MaxHolders, int(l.maxHolders))
		s.HoldSum += int64(l.holdSum)
	}
	if v, ok := firstErr.Load().(string); ok {
		s.FirstErr = v
	}
	return s, nil
}

type contendRow struct {
	c          contender
	label      string // e.g. "8 goroutines, hold 200µs"
	procs      int
	goroutines int // per process
	hold       time.Duration
	window     time.Duration
	limit      int  // holders admitted at once (1: a mutex)
	gapsKnown  bool // release→next gaps measured (mutexes)

	acq        int
	acqPerSec  float64
	wait       dist
	cutMax     time.Duration
	gap        dist
	holdMean   time.Duration
	reqsPerAcq float64
	cmdsPerAcq float64
	acqMin     int
	acqMax     int
	minMean    float64
	ideal      time.Duration // FIFO ideal wait p99 bound basis
	cut, fails int
	unlockFail int
	violations int
	maxHolders int
	firstErr   string
	err        error
}

func (r *contendRow) fill(s contendSample, calls int64) {
	r.acq = 0
	r.acqMin, r.acqMax = -1, 0
	for _, a := range s.Acq {
		r.acq += a
		if r.acqMin < 0 || a < r.acqMin {
			r.acqMin = a
		}
		r.acqMax = max(r.acqMax, a)
	}
	if r.acqMin < 0 {
		r.acqMin = 0
	}
	n := len(s.Acq)
	if r.acq > 0 && n > 0 {
		r.minMean = float64(r.acqMin) / (float64(r.acq) / float64(n))
		r.reqsPerAcq = float64(s.Requests) / float64(r.acq)
		r.cmdsPerAcq = float64(calls) / float64(r.acq)
		r.holdMean = time.Duration(s.HoldSum / int64(r.acq))
	}
	r.acqPerSec = float64(r.acq) / time.Duration(s.Elapsed).Seconds()
	// Waits cut off by the end of the window count as lower bounds: a
	// goroutine that waited all window long shows, rather than vanishes.
	waits := nsToDur(append(append([]int64(nil), s.Waits...), s.CutWaits...))
	r.wait = summarize(waits)
	for _, w := range s.CutWaits {
		r.cutMax = max(r.cutMax, time.Duration(w))
	}
	if r.gapsKnown {
		r.gap = summarize(nsToDur(s.Gaps))
	}
	r.cut, r.fails, r.unlockFail, r.violations, r.firstErr = s.Cut, s.Fails, s.UnlockFails, s.Violations, s.FirstErr
	r.maxHolders = s.MaxHolders
	limit := max(1, r.limit)
	ahead := time.Duration(n - limit) // who a FIFO waiter waits behind, at most
	switch {
	case r.acq == 0 || ahead <= 0:
	case r.procs == 1 && limit == 1 && r.gap.N > 0:
		r.ideal = ahead * (r.holdMean + r.gap.P50)
	case r.procs > 1 || limit > 1:
		// One turn of a slot is the mean time per acquisition × limit; a
		// FIFO waiter waits for the n − limit ahead of it, limit at a time.
		r.ideal = ahead * time.Duration(s.Elapsed/int64(r.acq))
	}
}

func nsToDur(ns []int64) []time.Duration {
	d := make([]time.Duration, len(ns))
	for i, v := range ns {
		d[i] = time.Duration(v)
	}
	return d
}

// runContendInProc runs g goroutines of this process on one key.
// With limit > 1 the lock is a semaphore of that many holders.
func runContendInProc(ctx context.Context, srv *server, c contender, g, limit int, hold, window time.Duration) (row contendRow) {
	row = contendRow{c: c, procs: 1, goroutines: g, hold: hold, window: window, limit: max(1, limit), gapsKnown: limit <= 1,
		label: fmt.Sprintf("%d goroutines in one process, hold %v", g, hold)}
	if limit > 1 {
		row.label = fmt.Sprintf("limit %d, %d goroutines in one process, hold %v", limit, g, hold)
	}
	var reqs atomic.Int64
	f, err := c.open(openOpts{addr: srv.addr, reqs: &reqs, limit: limit})
	if err != nil {
		row.err = err
		return row
	}
	defer f.Close()
	spec := contendSpec{Contender: c.name, Addr: srv.addr, Key: "bench:contended", Goroutines: g, Hold: hold, Window: window, Limit: limit}
	var st sharedState
	s, err := contend(ctx, f, spec, &st, &reqs, func() (time.Time, error) {
		if err := srv.reset(ctx); err != nil {
			return time.Time{}, err
		}
		return time.Now(), nil
	})
	if err != nil {
		row.err = err
		return row
	}
	row.finish(ctx, srv, s)
	return row
}

// ---------------------------------------------------------------------------
// 4. Many held locks under renewal

type heldRow struct {
	c           contender
	applicable  bool
	why         string // when not applicable
	asked       int
	locks       int   // acquired and held: asked, unless partial
	partial     bool  // not all acquired within setupTimeout
	dbsizeStart int64 // DBSIZE when all were acquired
	dbsizeEnd   int64 // DBSIZE at the end of the hold
	keys        int64 // keys the holds write (a lock may write several)
	keysAlive   int64 // of those, there at the end of the hold
	locksAlive  int64 // locks whose keys were enough for a hold at the end
	clientHeld  int   // locks the client believed it held at the end; -1: not known
	dur         time.Duration
	interval    time.Duration
	acquireTime time.Duration
	goroutines  int   // NumGoroutine at the end of the hold − before
	leftover    int   // NumGoroutine after release − before
	heap        int64 // HeapInuse at the end of the hold − before, after GC
	rounds      float64
	reqs        int64
	calls       int64
	err         error
}

// runHeld takes n locks on distinct names on one client, holds them for
// dur with the given lease and renewal interval, and measures what holding
// costs: goroutines, heap, requests, and whether every key stayed.
func runHeld(ctx context.Context, srv *server, c contender, n int, dur, lease, interval time.Duration) (row heldRow) {
	row = heldRow{c: c, applicable: c.renews, asked: n, locks: n, dur: dur, interval: interval}
	if !c.renews {
		row.why = "no automatic renewal"
		return row
	}
	var reqs atomic.Int64
	f, err := c.open(openOpts{addr: srv.addr, lease: lease, renew: interval, reqs: &reqs})
	if err != nil {
		row.err = err
		return row
	}
	defer f.Close()
	if r, ok := f.(interface{ renewInterval() time.Duration }); ok && r.renewInterval() > 0 {
		interval = r.renewInterval()
		row.interval = interval
	}
	warm := make([]Mutex, heldWorkers)
	for i := range warm {
		if warm[i], err = f.NewMutex(fmt.Sprintf("bench:held:warm:%d", i)); err != nil {
			row.err = err
			return row
		}
	}
	// Warm up first, so the connections the workers use are open, then
	// empty the server: what a warm-up release leaves does not count.
	if row.err = warmParallel(ctx, warm); row.err != nil {
		return row
	}
	if row.err = srv.reset(ctx); row.err != nil {
		return row
	}

	runtime.GC()
	g0 := runtime.NumGoroutine()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)

	holdCtx, cancelHold := context.WithCancel(ctx) // rueidislock holds end with it
	defer cancelHold()
	locks := make([]Mutex, n)
	held := make([]bool, n)
	t0 := time.Now()
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	err = forEach(setupCtx, n, heldWorkers, func(i int) error {
		m, err := f.NewMutex(fmt.Sprintf("bench:held:%d", i))
		if err != nil {
			return err
		}
		// The hold itself must outlive the setup deadline.
		if err := lockWithin(setupCtx, holdCtx, m); err != nil {
			return err
		}
		locks[i], held[i] = m, true
		return nil
	})
	// A library that has not acquired them all within setupTimeout is
	// measured on the locks it holds, and the row says how many.
	timedOut := errors.Is(setupCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancelSetup()
	row.acquireTime = time.Since(t0)
	var holding []Mutex
	for i, m := range locks {
		if held[i] {
			holding = append(holding, m)
		}
	}
	row.locks = len(holding)
	if timedOut {
		row.partial, err = true, nil
	}
	defer func() {
		// Release whatever is held, also after an error.
		relCtx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		_ = forEach(relCtx, n, heldWorkers, func(i int) error {
			if !held[i] {
				return nil
			}
			uctx, ucancel := unlockCtx()
			defer ucancel()
			return locks[i].Unlock(uctx)
		})
		cancelHold()
		// Let released holds wind down, then count what is left.
		released := time.Now()
		for time.Since(released) < windDown && runtime.NumGoroutine() > g0 {
			time.Sleep(50 * time.Millisecond)
		}
		row.leftover = runtime.NumGoroutine() - g0
		if row.leftover > tgtGoroutines && os.Getenv("BENCH_GOROUTINES") != "" {
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
		}
	}()
	if err == nil && row.locks == 0 {
		err = errors.New("none acquired")
	}
	if err != nil {
		row.err = fmt.Errorf("acquiring %d locks: %w", n, err)
		return row
	}

	if row.dbsizeStart, row.err = srv.dbsize(ctx); row.err != nil {
		return row
	}
	if row.err = srv.admin.ConfigResetStat(ctx).Err(); row.err != nil {
		return row
	}
	r0 := reqs.Load()
	start := time.Now()
	sleepCtx(ctx, dur)
	if row.err = ctx.Err(); row.err != nil {
		return row
	}
	elapsed := time.Since(start)
	row.reqs = reqs.Load() - r0
	row.goroutines = runtime.NumGoroutine() - g0
	if row.goroutines > tgtGoroutines && os.Getenv("BENCH_GOROUTINES") != "" {
		_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	}
	if row.calls, row.err = srv.commandCalls(ctx); row.err != nil {
		return row
	}
	if row.dbsizeEnd, row.err = srv.dbsize(ctx); row.err != nil {
		return row
	}
	row.clientHeld = countHeld(holding)
	if row.keys, row.keysAlive, row.locksAlive, row.err = srv.locksAlive(ctx, holding); row.err != nil {
		return row
	}
	runtime.GC()
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	row.heap = int64(ms1.HeapInuse) - int64(ms0.HeapInuse)
	row.rounds = float64(elapsed) / float64(interval)
	return row
}

// countHeld counts the Mutexes that believe they hold their lock (see
// holder), or returns -1 if they cannot tell.
func countHeld(ms []Mutex) int {
	n := 0
	for _, m := range ms {
		h, ok := m.(holder)
		if !ok {
			return -1
		}
		if h.held() {
			n++
		}
	}
	return n
}

// windDown bounds the wait for the goroutines of released holds to end.
const windDown = 10 * time.Second

// heldWorkers is how many goroutines acquire and release the held locks,
// and how many connections that warms up.
const heldWorkers = 32

// locksAlive checks on the server, with EXISTS in pipelines, the keys the
// Mutexes name (see keyed): how many of them exist, and how many Mutexes
// still have the keys a hold needs.
func (s *server) locksAlive(ctx context.Context, ms []Mutex) (keys, keysAlive, locksAlive int64, err error) {
	const batch = 1000 // keys per pipeline
	type lockKeys struct {
		n, quorum int
	}
	var (
		pending []string
		locks   []lockKeys
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		cmds, err := s.admin.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range pending {
				p.Exists(ctx, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		i := 0
		for _, l := range locks {
			var found int
			for range l.n {
				found += int(cmds[i].(*redis.IntCmd).Val())
				i++
			}
			keysAlive += int64(found)
			if found >= l.quorum {
				locksAlive++
			}
		}
		keys += int64(len(pending))
		pending, locks = pending[:0], locks[:0]
		return nil
	}
	for _, m := range ms {
		k, ok := m.(keyed)
		if !ok {
			return 0, 0, 0, fmt.Errorf("%T does not name its keys", m)
		}
		ks, quorum := k.keys()
		pending = append(pending, ks...)
		locks = append(locks, lockKeys{len(ks), quorum})
		if len(pending) >= batch {
			if err := flush(); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	return keys, keysAlive, locksAlive, flush()
}

// lockWithin locks m with holdCtx as the lock's context, giving up when
// waitCtx ends first.
func lockWithin(waitCtx, holdCtx context.Context, m Mutex) error {
	ctx, cancel := context.WithCancel(holdCtx)
	stop := context.AfterFunc(waitCtx, cancel)
	err := m.Lock(ctx)
	if !stop() && err == nil && waitCtx.Err() != nil {
		// The wait ended just as the lock was taken; the hold may be cut.
		err = waitCtx.Err()
	}
	if err != nil {
		cancel()
	}
	return err
}

// forEach calls fn(i) for i in [0, n) on workers goroutines and returns the
// first error; it stops handing out work when ctx ends.
func forEach(ctx context.Context, n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && first.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return ctx.Err()
}

// finish fills r from the samples s and the server's command count.
func (r *contendRow) finish(ctx context.Context, srv *server, s contendSample) {
	calls, err := srv.commandCalls(ctx)
	if err != nil {
		r.err = err
		return
	}
	r.fill(s, calls)
}
