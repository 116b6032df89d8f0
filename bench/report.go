package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	started    time.Time
	wall       time.Duration
	load       string // 1-minute load averages
	args       string
	quick      bool
	goVersion  string
	platform   string
	cpus       int
	maxprocs   int
	redis      string
	serverDesc string
	module     string // this library's revision
	deps       []string
	only       string // -only, as given
	set        settings
	scenarios  map[int]bool

	contenders    []contender      // mutexes: scenarios 1–5
	semContenders []contender      // semaphores: scenario 6
	uncontended   []uncontendedRow // one name per contender
	fresh         []uncontendedRow // a new name and Mutex per op
	parallel      []parallelRow
	contended     [][]contendRow // one list per configuration
	held          []heldRow
	names         []namesRow
	sem           [][]contendRow  // one list per configuration
	rw            []rwRow         // readers-writer runs
	rtt           []time.Duration // PING round trip p50, before and after scenario 3
	interrupted   string
}

// Target thresholds; they apply to this library's rows.
const (
	tgtLatencyVsBsm = 1.0
	tgtLatencyVsRaw = 1.25
	tgtServerVsBsm  = 1.5
	tgtAllocs       = 20
	tgtBytes        = 1024
	tgtGapP50       = time.Millisecond
	tgtGapP99       = 5 * time.Millisecond
	tgtWaitVsIdeal  = 2.0
	tgtReqsPerAcq   = 4
	tgtMinMean      = 0.5
	tgtGoroutines   = 16 // "O(1)": a constant, whatever the number of locks
	tgtLocksPerReq  = 50 // at most one request per 50 locks per round
	tgtHeapPerLock  = 1024

	// The fair lock (WithFair) is held to more: it serves in arrival order.
	tgtFairWaitVsIdeal = 1.3
	tgtFairMinMean     = 0.9
	tgtFairReqsPerAcq  = 3
	tgtFairGapRTT      = 1.5 // release → next-holder gap p50, in loopback round trips
)

// contendLimits are the targets a contention row of c is marked against.
func contendLimits(c contender) (waitVsIdeal, minMean, reqsPerAcq float64) {
	if c.fair {
		return tgtFairWaitVsIdeal, tgtFairMinMean, tgtFairReqsPerAcq
	}
	return tgtWaitVsIdeal, tgtMinMean, tgtReqsPerAcq
}

// rttMean is the mean of the round trips measured around scenario 3, or 0.
func (r *report) rttMean() time.Duration {
	if len(r.rtt) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.rtt {
		sum += d
	}
	return sum / time.Duration(len(r.rtt))
}

// gapRTT is a gap in round trips; NaN when no round trip was measured.
func (r *report) gapRTT(d time.Duration) float64 {
	rtt := r.rttMean()
	if rtt <= 0 {
		return math.NaN()
	}
	return float64(d) / float64(rtt)
}

func isSubject(c contender) bool { return c.lib == "redislock" }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// withMark appends PASS/MISS to a figure of this library's rows.
func withMark(c contender, fig string, ok bool) string {
	if !isSubject(c) {
		return fig
	}
	return fig + " " + verdict(ok)
}

type table struct {
	head []string
	rows [][]string
	text int // leading columns of text, aligned left; the rest are figures
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(b *strings.Builder) {
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", "\\|") + " |")
		}
		b.WriteString("\n")
	}
	row(t.head)
	b.WriteString("|")
	for i := range t.head {
		if i < max(1, t.text) {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		row(r)
	}
	b.WriteString("\n")
}

// refRow returns the first row of lib that ran without error: the
// reference the ratios of a table are taken against.
func refRow(rows []uncontendedRow, lib string) *uncontendedRow {
	for i := range rows {
		if rows[i].c.lib == lib && rows[i].err == nil && rows[i].ops > 0 {
			return &rows[i]
		}
	}
	return nil
}

func (r *report) markdown() string {
	var b strings.Builder
	s := r.set
	fmt.Fprintf(&b, "# Lock benchmark: redislock and its peers, %s\n\n", r.started.Format("2006-01-02"))
	fmt.Fprintf(&b, "- Date: %s\n", r.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- Go: %s %s, GOMAXPROCS %d; CPUs: %d\n", r.goVersion, r.platform, r.maxprocs, r.cpus)
	fmt.Fprintf(&b, "- Redis: %s, %s\n", r.redis, r.serverDesc)
	fmt.Fprintf(&b, "- Command: `go run .%s`\n", r.args)
	fmt.Fprintf(&b, "- This library: %s\n", r.module)
	if len(r.deps) > 0 {
		fmt.Fprintf(&b, "- Modules: %s\n", strings.Join(r.deps, ", "))
	}
	fmt.Fprintf(&b, "- Sizes: uncontended %d ops per contender and naming (%d runs); parallel %d goroutines × %v; contention window %v; "+
		"held %d locks (other libraries %d) × %v with TTL %v renewed every %v; names mode %d names\n",
		s.uncontendedOps, uncontendedRounds, s.parallelGoroutines, s.parallelDur, s.contendWindow,
		s.heldLocks, s.heldPeerLocks, s.heldDur, s.heldLease, s.heldRenew, s.names)
	fmt.Fprintf(&b, "- Semaphore: limit %d, %d goroutines (and %d processes × %d) × hold %v; readers-writer: %d readers + %d writers × hold %v; same window\n",
		s.semLimit, s.semGoroutines, s.semProcs, s.semGoroutines, s.semHold, s.rwReaders, s.rwWriters, s.rwHold)
	fmt.Fprintf(&b, "- Wall time: %v; load average (1 min): %s\n", r.wall.Round(100*time.Millisecond), r.load)
	if r.interrupted != "" {
		fmt.Fprintf(&b, "- **Incomplete**: %s\n", r.interrupted)
	}
	b.WriteString("\n")

	b.WriteString("## Contenders\n\n")
	ct := table{head: []string{"contender", "setting"}, text: 2}
	for _, c := range append(append([]contender(nil), r.contenders...), r.semContenders...) {
		ct.add(c.name, c.setting)
	}
	ct.write(&b)
	b.WriteString("Settings: **default** rows run a library as it comes; **docs** rows run it as its own documentation advises for " +
		"the deployment measured here, one Redis 7.0 instance (rueidislock's README: KeyMajority 1 on one instance and NoLoopTracking on " +
		"Redis ≥ 7.0.5; bsm/redislock documents no retry by default and shows LinearBackoff in its godoc examples; redsync's README uses its defaults); " +
		"**tuned** rows poll every 1 ms where the library allows it, which no library recommends. " +
		"A scenario that must set a timing (the held locks' lease) says so, for every row.\n\n")
	b.WriteString("How to read: **requests** are the commands a client sent, counted on its connections (an EVALSHA is one; " +
		"connection upkeep such as HELLO, CLIENT and PING is left out); **commands** are INFO commandstats calls over the run " +
		"(the server is flushed and its stats reset before each run), which also count every command a Lua script ran. Targets are judged on requests. " +
		"PASS/MISS marks apply to this library (redislock rows); the other rows are for comparison.\n\n")

	if r.scenarios[1] {
		r.writeUncontended(&b)
	}
	if r.scenarios[2] {
		r.writeParallel(&b)
	}
	if r.scenarios[3] {
		r.writeContended(&b)
	}
	if r.scenarios[4] {
		r.writeHeld(&b)
	}
	if r.scenarios[5] {
		r.writeNames(&b)
	}
	if r.scenarios[6] {
		r.writeSemaphore(&b)
	}
	if r.scenarios[7] {
		r.writeRW(&b)
	}
	r.writeTargets(&b)
	r.writeNewTargets(&b)
	r.writeProblems(&b)
	return b.String()
}

func (r *report) writeUncontended(b *strings.Builder) {
	fmt.Fprintf(b, "## 1. Uncontended acquire + release\n\n"+
		"One goroutine, %d Lock+Unlock pairs per contender after a warm-up, in %d runs that take turns between the contenders; "+
		"**p50** is the median of the runs' p50s, **p99** is over all pairs. **Reused name**: one name and one Mutex per contender. "+
		"**Fresh names**: a new name for every pair and a Mutex made for it (redislock.New, a new bsm Obtain key, a new raw key and value), "+
		"inside the timing and the allocation count, as code that locks one entity at a time does. "+
		"**server/op**: Redis's own time in the commands the client sent (INFO commandstats usec, stats reset before each contender's run; "+
		"a script's inner commands are in its EVALSHA's time and are not added again); allocations from runtime.MemStats around the loop "+
		"(all goroutines of the process, so a library's background work counts). Ratios are against the first bsm row and the raw row of the same table. "+
		"Targets: p50 ≤ %.2f× bsm and ≤ %.2f× raw, server time ≤ %.1f× bsm, ≤ %d allocs/op, ≤ %s/op.\n\n",
		r.set.uncontendedOps, uncontendedRounds, tgtLatencyVsBsm, tgtLatencyVsRaw, tgtServerVsBsm, tgtAllocs, fmtBytes(tgtBytes))
	for _, tab := range []struct {
		title string
		rows  []uncontendedRow
	}{{"Reused name", r.uncontended}, {"Fresh names", r.fresh}} {
		if len(tab.rows) == 0 {
			continue
		}
		bsm, raw := refRow(tab.rows, "bsm"), refRow(tab.rows, "raw")
		fmt.Fprintf(b, "### %s\n\n", tab.title)
		t := table{head: []string{"contender", "p50", "p99", "p50 / bsm", "p50 / raw", "server/op", "server / bsm",
			"allocs/op", "B/op", "requests/op", "commands/op"}}
		for _, row := range tab.rows {
			if row.err != nil || row.ops == 0 {
				t.add(row.c.name, "error", "", "", "", "", "", "", "", "", "")
				continue
			}
			vsBsm, vsRaw, srvBsm := uncontendedRatios(&row, bsm, raw)
			t.add(row.c.name, fmtDur(row.p50), fmtDur(row.lat.P99),
				markRatio(row.c, vsBsm, tgtLatencyVsBsm),
				markRatio(row.c, vsRaw, tgtLatencyVsRaw),
				fmtDur(row.serverPerOp),
				markRatio(row.c, srvBsm, tgtServerVsBsm),
				withMark(row.c, fmt.Sprintf("%.1f", row.allocs), row.allocs <= tgtAllocs),
				withMark(row.c, fmt.Sprintf("%.0f", row.bytes), row.bytes <= tgtBytes),
				fmt.Sprintf("%.2f", row.reqsPerOp), fmt.Sprintf("%.2f", row.cmdsPerOp))
		}
		t.write(b)
	}
}

// uncontendedRatios returns row's p50 against bsm's and raw's, and its
// server time against bsm's; NaN where a reference is missing.
func uncontendedRatios(row, bsm, raw *uncontendedRow) (vsBsm, vsRaw, srvBsm float64) {
	ratio := func(a, b time.Duration) float64 {
		if b <= 0 {
			return math.NaN()
		}
		return float64(a) / float64(b)
	}
	vsBsm, vsRaw, srvBsm = math.NaN(), math.NaN(), math.NaN()
	if bsm != nil {
		vsBsm, srvBsm = ratio(row.p50, bsm.p50), ratio(row.serverPerOp, bsm.serverPerOp)
	}
	if raw != nil {
		vsRaw = ratio(row.p50, raw.p50)
	}
	return vsBsm, vsRaw, srvBsm
}

// markRatio prints v and, on this library's rows, whether it is within
// limit; a missing reference (NaN) gets no mark.
func markRatio(c contender, v, limit float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return withMark(c, fmtRatio(v), within(v, limit))
}

// atLeast judges a share as printed, in whole percent.
func atLeast(v, limit float64) bool { return math.Round(v*100) >= math.Round(limit*100) }

// within judges a ratio as printed, to two decimals, so that a figure
// shown equal to its limit passes.
func within(v, limit float64) bool { return math.Round(v*100) <= math.Round(limit*100) }

func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", v)
}

func (r *report) writeParallel(b *strings.Builder) {
	fmt.Fprintf(b, "## 2. Parallel throughput on distinct keys\n\n"+
		"%d goroutines, each Lock+Unlock on its own key in a loop for %v, one client per contender (library defaults: go-redis pool of 10 × GOMAXPROCS; rueidis multiplexing).\n\n",
		r.set.parallelGoroutines, r.set.parallelDur)
	t := table{head: []string{"contender", "ops/s", "p50", "p99", "requests/op", "errors"}}
	for _, row := range r.parallel {
		if row.err != nil {
			t.add(row.c.name, "error", "", "", "", "")
			continue
		}
		t.add(row.c.name, fmtNum(row.opsPerSec), fmtDur(row.lat.P50), fmtDur(row.lat.P99), fmt.Sprintf("%.2f", row.reqsPerOp), fmt.Sprint(row.errs))
	}
	t.write(b)
}

func (r *report) writeContended(b *strings.Builder) {
	fmt.Fprintf(b, "## 3. Contention on one key\n\n"+
		"Each goroutine loops Lock → hold (time.Sleep) → Unlock for %v. **wait**: Lock call start → return; the calls still waiting "+
		"when the window closed count with their wait so far, a lower bound (max marked ≥ when it is one of them), so starvation shows; "+
		"**gap**: previous holder's Unlock start → next Lock return, on the machine's wall clock (one clock for all processes, kept in shared memory), "+
		"so multi-process runs have it too; **RTT**: a PING's round trip through go-redis, p50, measured before and after this scenario "+
		"(%s), and **gap/RTT** the gap p50 in those round trips; **FIFO ideal** = (goroutines − 1) × (mean hold + gap p50), "+
		"or in the multi-process run (goroutines − 1) × window / acquisitions; **fair** = least acquisitions of a goroutine / mean; "+
		"**cut**: Lock calls still waiting when the window closed; "+
		"**fails**: Lock calls that returned an error inside the window; **overlaps**: acquisitions while another holder was counted "+
		"(in shared memory across processes), which must be 0. "+
		"Targets: gap p50 ≤ %v, gap p99 ≤ %v, wait p99 ≤ %.0f× FIFO ideal, ≤ %d requests/acquisition, fair ≥ %.0f%%; "+
		"the fair lock (redislock/fair) is marked against its own: wait p99 ≤ %.1f× FIFO ideal, fair ≥ %.0f%%, ≤ %d requests/acquisition, "+
		"gap p50 ≤ %.1f round trips.\n\n",
		r.set.contendWindow, r.rttList(), fmtDur(tgtGapP50), fmtDur(tgtGapP99), tgtWaitVsIdeal, tgtReqsPerAcq, tgtMinMean*100,
		tgtFairWaitVsIdeal, tgtFairMinMean*100, tgtFairReqsPerAcq, tgtFairGapRTT)
	for _, rows := range r.contended {
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(b, "### %s\n\n", rows[0].label)
		t := table{head: []string{"contender", "acq/s", "wait p50", "wait p99", "wait max", "FIFO ideal", "wait p99 / ideal", "gap p50", "gap p99", "gap/RTT",
			"requests/acq", "commands/acq", "acq per goroutine", "fair", "cut", "fails", "overlaps"}}
		for _, row := range rows {
			if row.err != nil {
				t.add(row.c.name, "error")
				continue
			}
			if row.acq == 0 {
				t.add(row.c.name, "0", "", "", "", "", "", "", "", "", "", "", "", "", fmt.Sprint(row.cut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
				continue
			}
			waitLim, meanLim, reqLim := contendLimits(row.c)
			waitMax := fmtDur(row.wait.Max)
			if row.cutMax >= row.wait.Max {
				waitMax = "≥ " + waitMax
			}
			gap50, gap99, gapRTT := "n/a", "n/a", "n/a"
			if row.gapsKnown && row.gap.N > 0 {
				gap50 = withMark(row.c, fmtDur(row.gap.P50), row.gap.P50 <= tgtGapP50)
				gap99 = withMark(row.c, fmtDur(row.gap.P99), row.gap.P99 <= tgtGapP99)
				v := r.gapRTT(row.gap.P50)
				gapRTT = fmtRatio(v)
				if row.c.fair && !math.IsNaN(v) {
					gapRTT = withMark(row.c, gapRTT, within(v, tgtFairGapRTT))
				}
			}
			ratio := math.NaN()
			if row.ideal > 0 {
				ratio = float64(row.wait.P99) / float64(row.ideal)
			}
			t.add(row.c.name, fmtNum(row.acqPerSec), fmtDur(row.wait.P50), fmtDur(row.wait.P99), waitMax, fmtDur(row.ideal),
				markRatio(row.c, ratio, waitLim), gap50, gap99, gapRTT,
				withMark(row.c, fmt.Sprintf("%.2f", row.reqsPerAcq), row.reqsPerAcq <= reqLim),
				fmt.Sprintf("%.1f", row.cmdsPerAcq),
				fmt.Sprintf("%d–%d", row.acqMin, row.acqMax),
				withMark(row.c, fmt.Sprintf("%.0f%%", row.minMean*100), atLeast(row.minMean, meanLim)),
				fmt.Sprint(row.cut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
		}
		t.write(b)
	}
}

// rttList prints the round trips measured around scenario 3.
func (r *report) rttList() string {
	if len(r.rtt) == 0 {
		return "not measured"
	}
	var parts []string
	for _, d := range r.rtt {
		parts = append(parts, fmtDur(d))
	}
	return strings.Join(parts, " and ") + ", mean " + fmtDur(r.rttMean())
}

func (r *report) writeHeld(b *strings.Builder) {
	fmt.Fprintf(b, "## 4. Held locks under renewal for %v\n\n"+
		"Each contender that renews by itself takes locks on distinct names on one client, with a lease of %v renewed every %v "+
		"(rueidislock's default timings; redislock is set to them with WithTTL and WithHeartbeat, its heartbeat shortened to the longest it accepts, "+
		"half the lease less its safety margin, where that is below the interval: see **interval**), then holds them. "+
		"This library holds %d locks; the others %d, because they spend a goroutine and a request per lock per round and more would "+
		"swamp a shared 2-core machine; their per-lock figures are comparable. "+
		"**goroutines** and **heap** (HeapInuse after GC) are deltas against the moment before acquiring, snapshots taken at the end of the hold "+
		"(a goroutine per held lock is steady state, not a spike); "+
		"**rounds** = hold time / renewal interval; requests and commands are counted over the hold only; "+
		"**locks alive**: locks whose keys are there at the end of the hold (EXISTS on each), enough of them for a hold (a lock is 1 key; "+
		"for rueidislock's defaults 3 keys, of which 2 make a hold); **keys alive**: of all keys the locks write, how many exist; "+
		"**held (client)**: locks the library still reported as held at the end (redislock's Held, rueidislock's context not done); "+
		"**DBSIZE** at the start and end of the hold, which also counts keys other than the locks' own; "+
		"**left** is the goroutine delta after releasing all. "+
		"Targets: goroutines ≤ %d whatever the number of locks (O(1)), ≤ 1 request per %d locks per round, every lock alive, heap ≤ %s per lock.\n\n",
		r.set.heldDur, r.set.heldLease, r.set.heldRenew, r.set.heldLocks, r.set.heldPeerLocks,
		tgtGoroutines, tgtLocksPerReq, fmtBytes(tgtHeapPerLock))
	t := table{head: []string{"contender", "locks", "acquire all", "goroutines", "heap", "heap/lock", "interval", "rounds", "requests/round",
		"locks/request", "commands/round", "locks alive", "keys alive", "held (client)", "DBSIZE", "left"}}
	for _, row := range r.held {
		switch {
		case !row.applicable:
			t.add(row.c.name, "n/a: "+row.why)
			continue
		case row.err != nil:
			t.add(row.c.name, fmt.Sprint(row.asked), "error")
			continue
		}
		perRound := float64(row.reqs) / row.rounds
		locksPerReq := math.Inf(1)
		if row.reqs > 0 {
			locksPerReq = float64(row.locks) / perRound
		}
		lpr := "∞"
		if !math.IsInf(locksPerReq, 1) {
			lpr = fmtNum(locksPerReq)
		}
		heapPerLock := float64(row.heap) / float64(row.locks)
		heldFig := "n/a"
		if row.clientHeld >= 0 {
			heldFig = fmt.Sprintf("%d / %d", row.clientHeld, row.locks)
		}
		locks := fmt.Sprint(row.locks)
		if row.partial {
			locks = fmt.Sprintf("%d of %d (the rest not acquired in %v)", row.locks, row.asked, setupTimeout)
		}
		t.add(row.c.name, locks, fmtDur(row.acquireTime),
			withMark(row.c, fmt.Sprint(row.goroutines), row.goroutines <= tgtGoroutines),
			fmtBytes(float64(row.heap)),
			withMark(row.c, fmtBytes(heapPerLock), heapPerLock <= tgtHeapPerLock),
			fmtDur(row.interval),
			fmt.Sprintf("%.1f", row.rounds),
			fmtNum(perRound),
			withMark(row.c, lpr, locksPerReq >= tgtLocksPerReq),
			fmtNum(float64(row.calls)/row.rounds),
			withMark(row.c, fmt.Sprintf("%d / %d", row.locksAlive, row.locks), row.locksAlive == int64(row.locks)),
			fmt.Sprintf("%d / %d", row.keysAlive, row.keys),
			heldFig,
			fmt.Sprintf("%d → %d", row.dbsizeStart, row.dbsizeEnd),
			fmt.Sprint(row.leftover))
	}
	t.write(b)
}

// fmtMB prints bytes in decimal megabytes, the unit of the names target.
func fmtMB(v int64) string { return fmt.Sprintf("%.2f MB", float64(v)/1e6) }

func (r *report) writeNames(b *strings.Builder) {
	fmt.Fprintf(b, "## 5. Unique names: what locking each entity once leaves on the server\n\n"+
		"%d unique names, each acquired and released once with a Mutex made for it (redislock.New per name, as code that locks one entity "+
		"at a time does), by %d goroutines, on an empty server (FLUSHALL after a warm-up that opened the connections), bounded to %v. "+
		"**keys**: DBSIZE right after the last release, then after waiting up to %v (2 × DefaultReleaseTimeout and a margin for Redis to "+
		"reclaim expired keys), polling DBSIZE every %v and stopping early when no key is left; **settled**: when DBSIZE last changed, after "+
		"the last release; **growth**: used_memory minus its value before the first name (keys, expiry tables and their buckets, which Redis "+
		"shrinks only once they are under 10%% full). This measures whatever key layout the library under test has. "+
		"Targets (this library, after the window): keys ≤ min(names, %d), growth ≤ 2 MB (%d bytes).\n\n",
		r.set.names, namesWorkers, namesTimeout, namesWindow, namesPoll, tgtNamesSlotKeys, tgtNamesGrowth)
	t := table{head: []string{"contender", "names", "time", "keys after", "growth after", "waited", "keys after window",
		"growth after window", "settled", "bytes/name after window"}}
	for _, row := range r.names {
		if row.err != nil {
			t.add(row.c.name, fmt.Sprintf("%d / %d", row.done, row.names), "error")
			continue
		}
		names := fmt.Sprint(row.done)
		if row.done < row.names {
			names = fmt.Sprintf("%d of %d (time bound)", row.done, row.names)
		}
		settled := fmtDur(row.settled)
		if row.settled == 0 {
			settled = "unchanged"
		}
		perName := "n/a"
		if row.done > 0 {
			perName = fmt.Sprintf("%.0f", float64(row.growthWindow())/float64(row.done))
		}
		t.add(row.c.name, names, fmtDur(row.elapsed),
			fmt.Sprint(row.keysAfter), fmtMB(row.growthAfter()),
			fmtDur(row.window),
			withMark(row.c, fmt.Sprint(row.keysWindow), row.keysWindow <= row.keysTarget()),
			withMark(row.c, fmtMB(row.growthWindow()), row.growthWindow() <= tgtNamesGrowth),
			settled, perName)
	}
	t.write(b)
}

// writeTargets sums up the targets for this library's rows.
func (r *report) writeTargets(b *strings.Builder) {
	var subjects []contender
	for _, c := range r.contenders {
		if isSubject(c) {
			subjects = append(subjects, c)
		}
	}
	if len(subjects) == 0 {
		return
	}
	b.WriteString("## Targets (this library)\n\n")
	head := []string{"target"}
	for _, c := range subjects {
		head = append(head, c.name)
	}
	t := table{head: head}
	type check func(c contender) string
	addRow := func(name string, f check) {
		cells := []string{name}
		some := false
		for _, c := range subjects {
			v := f(c)
			if v != "" {
				some = true
			} else {
				v = "not run"
			}
			cells = append(cells, v)
		}
		if some {
			t.add(cells...)
		}
	}
	for _, tab := range []struct {
		title string
		rows  []uncontendedRow
	}{{"uncontended, reused name", r.uncontended}, {"uncontended, fresh names", r.fresh}} {
		bsm, raw := refRow(tab.rows, "bsm"), refRow(tab.rows, "raw")
		find := func(c contender) *uncontendedRow {
			for i := range tab.rows {
				if tab.rows[i].c.name == c.name && tab.rows[i].err == nil && tab.rows[i].ops > 0 {
					return &tab.rows[i]
				}
			}
			return nil
		}
		ratioRow := func(name string, limit float64, pick func(vsBsm, vsRaw, srvBsm float64) float64, fig func(*uncontendedRow) string) {
			addRow(name, func(c contender) string {
				row := find(c)
				if row == nil {
					return ""
				}
				v := pick(uncontendedRatios(row, bsm, raw))
				if math.IsNaN(v) {
					return "n/a (reference not run)"
				}
				return fmt.Sprintf("%s = %s %s", fig(row), fmtRatio(v), verdict(within(v, limit)))
			})
		}
		p50 := func(row *uncontendedRow) string { return fmtDur(row.p50) }
		ratioRow(fmt.Sprintf("%s: p50 ≤ %.2f× bsm", tab.title, tgtLatencyVsBsm), tgtLatencyVsBsm,
			func(v, _, _ float64) float64 { return v }, p50)
		ratioRow(fmt.Sprintf("%s: p50 ≤ %.2f× raw", tab.title, tgtLatencyVsRaw), tgtLatencyVsRaw,
			func(_, v, _ float64) float64 { return v }, p50)
		ratioRow(fmt.Sprintf("%s: server time ≤ %.1f× bsm", tab.title, tgtServerVsBsm), tgtServerVsBsm,
			func(_, _, v float64) float64 { return v }, func(row *uncontendedRow) string { return fmtDur(row.serverPerOp) })
		addRow(fmt.Sprintf("%s: ≤ %d allocs, ≤ %s per op", tab.title, tgtAllocs, fmtBytes(tgtBytes)), func(c contender) string {
			if row := find(c); row != nil {
				return fmt.Sprintf("%.1f, %.0f B %s", row.allocs, row.bytes, verdict(row.allocs <= tgtAllocs && row.bytes <= tgtBytes))
			}
			return ""
		})
	}
	for _, rows := range r.contended {
		if len(rows) == 0 {
			continue
		}
		label := rows[0].label
		find := func(c contender) *contendRow {
			for i := range rows {
				if rows[i].c.name == c.name && rows[i].err == nil && rows[i].acq > 0 {
					return &rows[i]
				}
			}
			return nil
		}
		if rows[0].gapsKnown {
			addRow(label+": gap p50 ≤ "+fmtDur(tgtGapP50), func(c contender) string {
				if row := find(c); row != nil && row.gap.N > 0 {
					return fmtDur(row.gap.P50) + " " + verdict(row.gap.P50 <= tgtGapP50)
				}
				return ""
			})
			addRow(label+": gap p99 ≤ "+fmtDur(tgtGapP99), func(c contender) string {
				if row := find(c); row != nil && row.gap.N > 0 {
					return fmtDur(row.gap.P99) + " " + verdict(row.gap.P99 <= tgtGapP99)
				}
				return ""
			})
		}
		addRow(fmt.Sprintf("%s: wait p99 ≤ %.0f× FIFO ideal", label, tgtWaitVsIdeal), func(c contender) string {
			if row := find(c); row != nil && row.ideal > 0 {
				v := float64(row.wait.P99) / float64(row.ideal)
				return fmt.Sprintf("%s = %.2f× %s", fmtDur(row.wait.P99), v, verdict(v <= tgtWaitVsIdeal))
			}
			return ""
		})
		addRow(fmt.Sprintf("%s: ≤ %d requests/acquisition", label, tgtReqsPerAcq), func(c contender) string {
			if row := find(c); row != nil {
				return fmt.Sprintf("%.2f %s", row.reqsPerAcq, verdict(row.reqsPerAcq <= tgtReqsPerAcq))
			}
			return ""
		})
		addRow(fmt.Sprintf("%s: least acquisitions ≥ %.0f%% of mean", label, tgtMinMean*100), func(c contender) string {
			if row := find(c); row != nil {
				return fmt.Sprintf("%.0f%% %s", row.minMean*100, verdict(row.minMean >= tgtMinMean))
			}
			return ""
		})
	}
	heldRowOf := func(c contender) *heldRow {
		for i := range r.held {
			if r.held[i].c.name == c.name && r.held[i].applicable && r.held[i].err == nil {
				return &r.held[i]
			}
		}
		return nil
	}
	addRow("held locks: goroutines O(1) (≤ 16)", func(c contender) string {
		if row := heldRowOf(c); row != nil {
			return fmt.Sprintf("%d with %d locks %s", row.goroutines, row.locks, verdict(row.goroutines <= tgtGoroutines))
		}
		return ""
	})
	addRow(fmt.Sprintf("held locks: ≤ 1 request per %d locks per round", tgtLocksPerReq), func(c contender) string {
		if row := heldRowOf(c); row != nil && row.rounds > 0 {
			perRound := float64(row.reqs) / row.rounds
			limit := float64(row.locks) / tgtLocksPerReq
			return fmt.Sprintf("%s/round (limit %s) %s", fmtNum(perRound), fmtNum(limit), verdict(perRound <= limit))
		}
		return ""
	})
	addRow("held locks: every lock alive at the end", func(c contender) string {
		if row := heldRowOf(c); row != nil {
			return fmt.Sprintf("%d / %d %s", row.locksAlive, row.locks, verdict(row.locksAlive == int64(row.locks)))
		}
		return ""
	})
	addRow(fmt.Sprintf("held locks: heap ≤ %s per lock", fmtBytes(tgtHeapPerLock)), func(c contender) string {
		if row := heldRowOf(c); row != nil {
			v := float64(row.heap) / float64(row.locks)
			return fmt.Sprintf("%s %s", fmtBytes(v), verdict(v <= tgtHeapPerLock))
		}
		return ""
	})
	namesRowOf := func(c contender) *namesRow {
		for i := range r.names {
			if r.names[i].c.name == c.name && r.names[i].err == nil {
				return &r.names[i]
			}
		}
		return nil
	}
	addRow(fmt.Sprintf("unique names: keys after the window ≤ min(names, %d)", tgtNamesSlotKeys), func(c contender) string {
		if row := namesRowOf(c); row != nil {
			return fmt.Sprintf("%d (limit %d) %s", row.keysWindow, row.keysTarget(), verdict(row.keysWindow <= row.keysTarget()))
		}
		return ""
	})
	addRow("unique names: used_memory growth after the window ≤ 2 MB", func(c contender) string {
		if row := namesRowOf(c); row != nil {
			return fmt.Sprintf("%s %s", fmtMB(row.growthWindow()), verdict(row.growthWindow() <= tgtNamesGrowth))
		}
		return ""
	})
	t.write(b)
}

// semRef returns the raw semaphore's row of a configuration, the reference
// of its ratios.
func semRef(rows []contendRow) *contendRow {
	for i := range rows {
		if rows[i].c.lib == "raw" && rows[i].err == nil && rows[i].acq > 0 {
			return &rows[i]
		}
	}
	return nil
}

func (r *report) writeSemaphore(b *strings.Builder) {
	fmt.Fprintf(b, "## 6. Semaphore: limit %d on one name\n\n"+
		"Each goroutine loops Lock → hold (time.Sleep %v) → Unlock for %v on a semaphore of %d permits: redislock.NewSemaphore at its defaults, "+
		"and a raw recipe (one Lua script drops the expired members with ZREMRANGEBYSCORE, counts with ZCARD and adds with ZADD when below the limit, "+
		"polled every 1 ms; release is ZREM). Columns as in scenario 3; **FIFO ideal** = (goroutines − limit) × window / acquisitions "+
		"(a waiter waits for those ahead of it, limit at a time); **max holders**: the most holders counted at once inside the holds "+
		"(in shared memory across processes), which must not exceed the limit; **over limit**: acquisitions that made more than limit holders. "+
		"**÷ raw** columns are against the raw row of the same table.\n\n",
		r.set.semLimit, r.set.semHold, r.set.contendWindow, r.set.semLimit)
	for _, rows := range r.sem {
		if len(rows) == 0 {
			continue
		}
		ref := semRef(rows)
		fmt.Fprintf(b, "### %s\n\n", rows[0].label)
		t := table{head: []string{"contender", "acq/s", "acq/s ÷ raw", "wait p50", "wait p99", "wait p99 ÷ raw", "wait max", "FIFO ideal", "wait p99 / ideal",
			"max holders", "requests/acq", "requests ÷ raw", "commands/acq", "acq per goroutine", "fair", "cut", "fails", "over limit"}}
		for _, row := range rows {
			if row.err != nil {
				t.add(row.c.name, "error")
				continue
			}
			if row.acq == 0 {
				t.add(row.c.name, "0")
				continue
			}
			vsRaw := func(a, b float64) string {
				if ref == nil || b == 0 {
					return "n/a"
				}
				return fmtRatio(a / b)
			}
			waitMax := fmtDur(row.wait.Max)
			if row.cutMax >= row.wait.Max {
				waitMax = "≥ " + waitMax
			}
			ratio := math.NaN()
			if row.ideal > 0 {
				ratio = float64(row.wait.P99) / float64(row.ideal)
			}
			var refAcq, refWait, refReqs float64
			if ref != nil {
				refAcq, refWait, refReqs = ref.acqPerSec, float64(ref.wait.P99), ref.reqsPerAcq
			}
			t.add(row.c.name, fmtNum(row.acqPerSec), vsRaw(row.acqPerSec, refAcq), fmtDur(row.wait.P50), fmtDur(row.wait.P99),
				vsRaw(float64(row.wait.P99), refWait), waitMax, fmtDur(row.ideal), fmtRatio(ratio),
				withMark(row.c, fmt.Sprintf("%d / %d", row.maxHolders, row.limit), row.maxHolders <= row.limit),
				fmt.Sprintf("%.2f", row.reqsPerAcq), vsRaw(row.reqsPerAcq, refReqs), fmt.Sprintf("%.1f", row.cmdsPerAcq),
				fmt.Sprintf("%d–%d", row.acqMin, row.acqMax), fmt.Sprintf("%.0f%%", row.minMean*100),
				fmt.Sprint(row.cut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
		}
		t.write(b)
	}
}

func (r *report) writeRW(b *strings.Builder) {
	fmt.Fprintf(b, "## 7. Readers-writer lock\n\n"+
		"%d reader and %d writer goroutines in one process, each with an RWLock of its own (redislock.NewRWLock at its defaults) on one name, "+
		"loop Lock → hold (time.Sleep %v) → Unlock on its Reader() or Writer() for %v. **wait** as in scenario 3, cut waits included as lower bounds; "+
		"**writer max wait** is the starvation check (a writer starved by a stream of readers would show a wait near the window); "+
		"**overlaps**: a writer's hold with any other hold, counted inside the holds, which must be 0. "+
		"No peer row: github.com/jefferyjob/go-redislock, the one Go peer found with a readers-writer lock on Redis, is not served by the module proxy here.\n\n",
		r.set.rwReaders, r.set.rwWriters, r.set.rwHold, r.set.contendWindow)
	t := table{head: []string{"lock", "reads/s", "writes/s", "reader wait p50", "reader wait p99", "reader wait max", "writer wait p50", "writer wait p99",
		"writer max wait", "writes per writer", "requests/acq", "commands/acq", "cut (r/w)", "fails", "overlaps"}}
	for _, row := range r.rw {
		if row.err != nil {
			t.add(row.name, "error")
			continue
		}
		sec := row.window.Seconds()
		rmax, wmax := fmtDur(row.readWait.Max), fmtDur(row.writeWait.Max)
		if row.readCutMax >= row.readWait.Max && row.readCut > 0 {
			rmax = "≥ " + rmax
		}
		if row.writeCutMax >= row.writeWait.Max && row.writeCut > 0 {
			wmax = "≥ " + wmax
		}
		t.add(row.name, fmtNum(float64(row.readAcq)/sec), fmtNum(float64(row.writeAcq)/sec),
			fmtDur(row.readWait.P50), fmtDur(row.readWait.P99), rmax,
			fmtDur(row.writeWait.P50), fmtDur(row.writeWait.P99), wmax,
			fmt.Sprintf("%d–%d", row.writeAcqMin, row.writeAcqMax),
			fmt.Sprintf("%.2f", row.reqsPerAcq), fmt.Sprintf("%.1f", row.cmdsPerAcq),
			fmt.Sprintf("%d / %d", row.readCut, row.writeCut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
	}
	t.write(b)
}

// writeNewTargets judges the fair lock, the semaphore and the RWLock.
func (r *report) writeNewTargets(b *strings.Builder) {
	t := table{head: []string{"target", "figure", "verdict"}, text: 1}
	for _, rows := range r.contended {
		for _, row := range rows {
			if !row.c.fair || row.err != nil || row.acq == 0 {
				continue
			}
			label := row.c.name + ", " + row.label
			if row.ideal > 0 {
				v := float64(row.wait.P99) / float64(row.ideal)
				t.add(fmt.Sprintf("%s: wait p99 ≤ %.1f× FIFO ideal", label, tgtFairWaitVsIdeal),
					fmt.Sprintf("%s / %s = %s", fmtDur(row.wait.P99), fmtDur(row.ideal), fmtRatio(v)), verdict(within(v, tgtFairWaitVsIdeal)))
			}
			t.add(fmt.Sprintf("%s: fewest acquisitions / mean ≥ %.1f", label, tgtFairMinMean),
				fmt.Sprintf("%d / %.1f = %.2f", row.acqMin, float64(row.acq)/float64(row.goroutines*row.procs), row.minMean),
				verdict(math.Round(row.minMean*100) >= math.Round(tgtFairMinMean*100)))
			t.add(fmt.Sprintf("%s: ≤ %d requests/acquisition", label, tgtFairReqsPerAcq),
				fmt.Sprintf("%.2f", row.reqsPerAcq), verdict(row.reqsPerAcq <= tgtFairReqsPerAcq))
			if row.gap.N > 0 {
				v := r.gapRTT(row.gap.P50)
				fig := fmt.Sprintf("%s / RTT %s = %s", fmtDur(row.gap.P50), fmtDur(r.rttMean()), fmtRatio(v))
				mark := "n/a"
				if !math.IsNaN(v) {
					mark = verdict(within(v, tgtFairGapRTT))
				}
				t.add(fmt.Sprintf("%s: release → next-holder gap p50 ≤ %.1f round trips", label, tgtFairGapRTT), fig, mark)
			}
		}
	}
	for _, rows := range r.sem {
		for _, row := range rows {
			if !isSubject(row.c) || row.err != nil || row.acq == 0 {
				continue
			}
			t.add(fmt.Sprintf("%s, %s: max concurrent holders ≤ %d", row.c.name, row.label, row.limit),
				fmt.Sprint(row.maxHolders), verdict(row.maxHolders <= row.limit && row.violations == 0))
		}
	}
	for _, row := range r.rw {
		if row.err != nil {
			continue
		}
		t.add(row.name+": no overlapping write hold", fmt.Sprint(row.violations), verdict(row.violations == 0))
		t.add(row.name+": no writer starved (every writer acquired, writer max wait < half the window)",
			fmt.Sprintf("writes per writer %d–%d, writer max wait %s of %v", row.writeAcqMin, row.writeAcqMax, fmtDur(row.writeWait.Max), row.window),
			verdict(row.writeAcqMin > 0 && row.writeWait.Max < row.window/2))
	}
	if len(t.rows) == 0 {
		return
	}
	b.WriteString("## Targets (fair lock, semaphore, readers-writer lock)\n\n")
	t.write(b)
}

func (r *report) writeProblems(b *strings.Builder) {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	for _, row := range r.uncontended {
		if row.err != nil {
			add("uncontended, reused name, %s: %v", row.c.name, row.err)
		}
	}
	for _, row := range r.fresh {
		if row.err != nil {
			add("uncontended, fresh names, %s: %v", row.c.name, row.err)
		}
	}
	for _, row := range r.parallel {
		if row.err != nil {
			add("parallel, %s: %v", row.c.name, row.err)
		} else if row.errs > 0 {
			add("parallel, %s: %d errors, first: %s", row.c.name, row.errs, row.firstErr)
		}
	}
	for _, rows := range r.contended {
		for _, row := range rows {
			switch {
			case row.err != nil:
				add("%s, %s: %v", row.label, row.c.name, row.err)
			case row.fails > 0 || row.unlockFail > 0:
				add("%s, %s: %d failed Lock calls, %d failed Unlock calls, first: %s", row.label, row.c.name, row.fails, row.unlockFail, row.firstErr)
			}
			if row.violations > 0 {
				add("%s, %s: %d overlapping holds", row.label, row.c.name, row.violations)
			}
		}
	}
	for _, rows := range r.sem {
		for _, row := range rows {
			switch {
			case row.err != nil:
				add("semaphore, %s, %s: %v", row.label, row.c.name, row.err)
			case row.fails > 0 || row.unlockFail > 0:
				add("semaphore, %s, %s: %d failed Lock calls, %d failed Unlock calls, first: %s", row.label, row.c.name, row.fails, row.unlockFail, row.firstErr)
			}
			if row.violations > 0 {
				add("semaphore, %s, %s: %d acquisitions over the limit", row.label, row.c.name, row.violations)
			}
		}
	}
	for _, row := range r.rw {
		switch {
		case row.err != nil:
			add("readers-writer, %s: %v", row.name, row.err)
		case row.fails > 0 || row.unlockFails > 0:
			add("readers-writer, %s: %d failed Lock calls, %d failed Unlock calls, first: %s", row.name, row.fails, row.unlockFails, row.firstErr)
		}
		if row.violations > 0 {
			add("readers-writer, %s: %d overlapping holds", row.name, row.violations)
		}
	}
	for _, row := range r.held {
		if row.err != nil {
			add("held locks, %s: %v", row.c.name, row.err)
		} else if row.partial {
			add("held locks, %s: %d of %d locks acquired within %v; the row measures those", row.c.name, row.locks, row.asked, setupTimeout)
		}
		if row.err == nil && row.applicable && row.locksAlive < int64(row.locks) {
			add("held locks, %s: %d of %d locks without the keys of a hold at the end: leases ran out", row.c.name, int64(row.locks)-row.locksAlive, row.locks)
		}
		if row.err == nil && row.applicable && row.clientHeld > int(row.locksAlive) {
			add("held locks, %s: the client believed it held %d locks, the server had the keys of %d", row.c.name, row.clientHeld, row.locksAlive)
		}
	}
	for _, row := range r.names {
		if row.err != nil {
			add("unique names, %s: %v", row.c.name, row.err)
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("## Problems seen\n\n")
	for _, l := range lines {
		b.WriteString("- " + strings.ReplaceAll(l, "\n", " ") + "\n")
	}
	b.WriteString("\n")
}
