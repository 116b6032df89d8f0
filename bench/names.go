package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redislock/redislock"
)

// ---------------------------------------------------------------------------
// 5. Unique names: what a lock per entity leaves on the server

// namesWindow is how long what a release leaves behind may take to expire:
// two release timeouts (a retried release must still find its record) and
// a margin for Redis to reclaim expired keys.
var namesWindow = 2*redislock.DefaultReleaseTimeout + 2*time.Second

const (
	namesWorkers = 8               // goroutines taking the names, each its own connection
	namesTimeout = 2 * time.Minute // bound on acquiring and releasing all names
	namesPoll    = 250 * time.Millisecond
)

// Targets of the names mode, for this library.
const (
	tgtNamesSlotKeys = 16384 // at most one key per Redis Cluster hash slot may stay
	tgtNamesGrowth   = 2_000_000
)

type namesRow struct {
	c       contender
	names   int // asked for
	done    int // acquired and released
	elapsed time.Duration

	keysAfter, keysWindow int64 // DBSIZE right after the last release, and after the window
	memBase               int64 // used_memory before the first name
	memAfter, memWindow   int64
	window                time.Duration // waited after the last release
	settled               time.Duration // when DBSIZE last changed, after the last release
	err                   error
}

func (r *namesRow) growthAfter() int64  { return r.memAfter - r.memBase }
func (r *namesRow) growthWindow() int64 { return r.memWindow - r.memBase }

// keysTarget is the most keys this library may leave after the window.
func (r *namesRow) keysTarget() int64 { return int64(min(r.done, tgtNamesSlotKeys)) }

// runNames acquires and releases n unique names once each, making a Mutex
// per name (as code that locks one entity at a time does), on an empty
// server, and measures the keys and memory left right after the last
// release and once whatever a release leaves for a while has expired.
func runNames(ctx context.Context, srv *server, c contender, n int) (row namesRow) {
	row = namesRow{c: c, names: n}
	var reqs atomic.Int64
	f, err := c.open(openOpts{addr: srv.addr, reqs: &reqs})
	if err != nil {
		row.err = err
		return row
	}
	defer f.Close()
	warm := make([]Mutex, namesWorkers)
	for i := range warm {
		if warm[i], err = f.NewMutex(fmt.Sprintf("bench:names:warm:%d", i)); err != nil {
			row.err = err
			return row
		}
	}
	// Open the workers' connections before the baseline: a connection's
	// buffers are server memory, but not what the names cost.
	if row.err = warmParallel(ctx, warm); row.err != nil {
		return row
	}
	if row.err = srv.reset(ctx); row.err != nil {
		return row
	}
	if row.memBase, row.err = srv.usedMemory(ctx); row.err != nil {
		return row
	}

	var done atomic.Int64
	runCtx, cancel := context.WithTimeout(ctx, namesTimeout)
	start := time.Now()
	err = forEach(runCtx, n, namesWorkers, func(i int) error {
		m, err := f.NewMutex(fmt.Sprintf("entity:%d", i))
		if err != nil {
			return err
		}
		if err := lockUnlock(runCtx, m); err != nil {
			return err
		}
		done.Add(1)
		return nil
	})
	cancel()
	row.elapsed = time.Since(start)
	row.done = int(done.Load())
	last := time.Now()
	if err != nil && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		row.err = err // the time bound only shortens the run
		return row
	}
	if row.keysAfter, row.err = srv.dbsize(ctx); row.err != nil {
		return row
	}
	if row.memAfter, row.err = srv.usedMemory(ctx); row.err != nil {
		return row
	}

	// Poll until the window has passed, or no key is left to expire.
	keys := row.keysAfter
	t := time.NewTicker(namesPoll)
	defer t.Stop()
	for keys > 0 && time.Since(last) < namesWindow {
		select {
		case <-ctx.Done():
			row.err = ctx.Err()
			return row
		case <-t.C:
		}
		k, err := srv.dbsize(ctx)
		if err != nil {
			row.err = err
			return row
		}
		if k != keys {
			keys, row.settled = k, time.Since(last)
		}
	}
	row.window = time.Since(last)
	row.keysWindow = keys
	row.memWindow, row.err = srv.usedMemory(ctx)
	return row
}

// namesContenders are the contenders of the names mode: this library at
// its defaults and the two references, or those of -only.
func namesContenders(selected []contender, only string) []contender {
	if only != "" {
		return selected
	}
	var out []contender
	for _, c := range selected {
		switch c.name {
		case "redislock/default", "bsm/docs", "raw/tuned":
			out = append(out, c)
		}
	}
	return out
}
