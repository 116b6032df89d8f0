package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redislock/redislock"
)

// rwRow is one readers-writer run: readers and writers goroutines of this
// process, each with an RWLock of its own on one name.
type rwRow struct {
	name             string // what ran, e.g. redislock.NewRWLock
	readers, writers int
	hold, window     time.Duration

	readAcq, writeAcq   int
	readWait, writeWait dist // successful waits and, as lower bounds, the cut ones
	readCutMax          time.Duration
	writeCutMax         time.Duration
	writeAcqMin         int // fewest acquisitions of a writer goroutine
	writeAcqMax         int
	readCut, writeCut   int
	reqsPerAcq          float64
	cmdsPerAcq          float64
	fails, unlockFails  int
	violations          int // a writer with anyone else, counted inside the holds
	firstErr            string
	err                 error
}

// runRW measures redislock.NewRWLock with readers and writers goroutines
// that loop Lock → hold → Unlock on one name for window.
func runRW(ctx context.Context, srv *server, readers, writers int, hold, window time.Duration) (row rwRow) {
	row = rwRow{name: "redislock.NewRWLock (defaults)", readers: readers, writers: writers, hold: hold, window: window}
	var reqs atomic.Int64
	c := newGoRedis(openOpts{addr: srv.addr, reqs: &reqs})
	defer c.Close()
	n := readers + writers
	locks := make([]Mutex, n)
	warm := make([]Mutex, n)
	for i := range n {
		rw, err := redislock.NewRWLock(c, "bench:rw")
		if err != nil {
			row.err = err
			return row
		}
		wrw, err := redislock.NewRWLock(c, fmt.Sprintf("bench:rw:warm:%d", i))
		if err != nil {
			row.err = err
			return row
		}
		if i < readers {
			locks[i], warm[i] = redislockMutex{rw.Reader()}, redislockMutex{wrw.Reader()}
		} else {
			locks[i], warm[i] = redislockMutex{rw.Writer()}, redislockMutex{wrw.Writer()}
		}
	}
	if row.err = warmParallel(ctx, warm); row.err != nil {
		return row
	}
	if row.err = srv.reset(ctx); row.err != nil {
		return row
	}
	r0 := reqs.Load()
	start := time.Now()
	end := start.Add(window)
	winCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()

	var (
		nReaders, nWriters atomic.Int32
		firstErr           atomic.Value
		wg                 sync.WaitGroup
	)
	type local struct {
		acq, cut, fails, unlockFails, violations int
		waits, cutWaits                          []time.Duration
	}
	locals := make([]local, n)
	perG := maxSamples / n
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, l, writer := locks[i], &locals[i], i >= readers
			for time.Now().Before(end) {
				t0 := time.Now()
				err := m.Lock(winCtx)
				t1 := time.Now()
				if err != nil {
					if winCtx.Err() != nil {
						l.cut++
						l.cutWaits = append(l.cutWaits, t1.Sub(t0))
						return
					}
					l.fails++
					firstErr.CompareAndSwap(nil, err.Error())
					sleepCtx(winCtx, time.Millisecond)
					continue
				}
				// Counted inside the hold, so any overlap seen is real.
				if writer {
					if nWriters.Add(1) != 1 || nReaders.Load() != 0 {
						l.violations++
					}
				} else if nReaders.Add(1); nWriters.Load() != 0 {
					l.violations++
				}
				l.acq++
				if len(l.waits) < perG {
					l.waits = append(l.waits, t1.Sub(t0))
				}
				time.Sleep(hold)
				if writer {
					nWriters.Add(-1)
				} else {
					nReaders.Add(-1)
				}
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
	reqsUsed := reqs.Load() - r0
	var readWaits, writeWaits []time.Duration
	row.writeAcqMin = -1
	for i, l := range locals {
		cutMax := time.Duration(0)
		for _, w := range l.cutWaits {
			cutMax = max(cutMax, w)
		}
		if i < readers {
			row.readAcq += l.acq
			row.readCut += l.cut
			readWaits = append(append(readWaits, l.waits...), l.cutWaits...)
			row.readCutMax = max(row.readCutMax, cutMax)
		} else {
			row.writeAcq += l.acq
			row.writeCut += l.cut
			writeWaits = append(append(writeWaits, l.waits...), l.cutWaits...)
			row.writeCutMax = max(row.writeCutMax, cutMax)
			if row.writeAcqMin < 0 || l.acq < row.writeAcqMin {
				row.writeAcqMin = l.acq
			}
			row.writeAcqMax = max(row.writeAcqMax, l.acq)
		}
		row.fails += l.fails
		row.unlockFails += l.unlockFails
		row.violations += l.violations
	}
	row.writeAcqMin = max(0, row.writeAcqMin)
	row.readWait, row.writeWait = summarize(readWaits), summarize(writeWaits)
	if v, ok := firstErr.Load().(string); ok {
		row.firstErr = v
	}
	if acq := row.readAcq + row.writeAcq; acq > 0 {
		row.reqsPerAcq = float64(reqsUsed) / float64(acq)
		calls, err := srv.commandCalls(ctx)
		if err != nil {
			row.err = err
			return row
		}
		row.cmdsPerAcq = float64(calls) / float64(acq)
	}
	return row
}
