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
	set        settings
	scenarios  map[int]bool

	contenders  []contender
	uncontended []uncontendedRow
	parallel    []parallelRow
	contended   [][]contendRow // one list per configuration
	held        []heldRow
	interrupted string
}

// Target thresholds; they apply to this library's rows.
const (
	tgtLatencyVsRaw = 1.15
	tgtAllocs       = 20
	tgtGapP50       = time.Millisecond
	tgtGapP99       = 5 * time.Millisecond
	tgtWaitVsIdeal  = 2.0
	tgtReqsPerAcq   = 4
	tgtMinMean      = 0.5
	tgtGoroutines   = 16 // "O(1)": a constant, whatever the number of locks
	tgtLocksPerReq  = 50 // at most one request per 50 locks per round
)

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

func (r *report) rawUncontended() *uncontendedRow {
	for i := range r.uncontended {
		if r.uncontended[i].c.lib == "raw" && r.uncontended[i].err == nil {
			return &r.uncontended[i]
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
	fmt.Fprintf(&b, "- Sizes: uncontended %d ops; parallel %d goroutines × %v; contention window %v; held %d locks × %v with TTL %v\n",
		s.uncontendedOps, s.parallelGoroutines, s.parallelDur, s.contendWindow, s.heldLocks, s.heldDur, s.heldLease)
	fmt.Fprintf(&b, "- Wall time: %v; load average (1 min): %s\n", r.wall.Round(100*time.Millisecond), r.load)
	if r.interrupted != "" {
		fmt.Fprintf(&b, "- **Incomplete**: %s\n", r.interrupted)
	}
	b.WriteString("\n")

	b.WriteString("## Contenders\n\n")
	ct := table{head: []string{"contender", "setting"}, text: 2}
	for _, c := range r.contenders {
		ct.add(c.name, c.setting)
	}
	ct.write(&b)
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
	r.writeTargets(&b)
	r.writeProblems(&b)
	return b.String()
}

func (r *report) writeUncontended(b *strings.Builder) {
	fmt.Fprintf(b, "## 1. Uncontended acquire + release\n\n"+
		"One goroutine, one key, %d Lock+Unlock pairs after a warm-up; latency per pair; allocations from runtime.MemStats "+
		"around the loop (all goroutines of the process, so background work of a library counts). "+
		"Targets: p50 ≤ %.2f× raw, ≤ %d allocs/op.\n\n", r.set.uncontendedOps, tgtLatencyVsRaw, tgtAllocs)
	raw := r.rawUncontended()
	t := table{head: []string{"contender", "p50", "p99", "p50 / raw", "allocs/op", "B/op", "requests/op", "commands/op"}}
	for _, row := range r.uncontended {
		if row.err != nil {
			t.add(row.c.name, "error", "", "", "", "", "", "")
			continue
		}
		ratio := "n/a"
		okRatio := false
		if raw != nil && raw.lat.P50 > 0 {
			v := float64(row.lat.P50) / float64(raw.lat.P50)
			ratio = fmt.Sprintf("%.2f×", v)
			okRatio = v <= tgtLatencyVsRaw
		}
		if raw != nil {
			ratio = withMark(row.c, ratio, okRatio)
		}
		t.add(row.c.name, fmtDur(row.lat.P50), fmtDur(row.lat.P99), ratio,
			withMark(row.c, fmt.Sprintf("%.1f", row.allocs), row.allocs <= tgtAllocs),
			fmt.Sprintf("%.0f", row.bytes), fmt.Sprintf("%.2f", row.reqsPerOp), fmt.Sprintf("%.2f", row.cmdsPerOp))
	}
	t.write(b)
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
		"**gap**: previous holder's Unlock start → next Lock return, on this process's monotonic clock, so in-process runs only "+
		"(clocks of different processes are not compared); **FIFO ideal** = (goroutines − 1) × (mean hold + gap p50), "+
		"or in the multi-process run (goroutines − 1) × window / acquisitions; **fair** = least acquisitions of a goroutine / mean; "+
		"**cut**: Lock calls still waiting when the window closed; "+
		"**fails**: Lock calls that returned an error inside the window; **overlaps**: acquisitions while another holder was counted "+
		"(in shared memory across processes), which must be 0. "+
		"Targets: gap p50 ≤ %v, gap p99 ≤ %v, wait p99 ≤ %.0f× FIFO ideal, ≤ %d requests/acquisition, fair ≥ %.0f%%.\n\n",
		r.set.contendWindow, fmtDur(tgtGapP50), fmtDur(tgtGapP99), tgtWaitVsIdeal, tgtReqsPerAcq, tgtMinMean*100)
	for _, rows := range r.contended {
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(b, "### %s\n\n", rows[0].label)
		t := table{head: []string{"contender", "acq/s", "wait p50", "wait p99", "wait max", "FIFO ideal", "gap p50", "gap p99",
			"requests/acq", "commands/acq", "acq per goroutine", "fair", "cut", "fails", "overlaps"}}
		for _, row := range rows {
			if row.err != nil {
				t.add(row.c.name, "error")
				continue
			}
			if row.acq == 0 {
				t.add(row.c.name, "0", "", "", "", "", "", "", "", "", "", "", fmt.Sprint(row.cut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
				continue
			}
			waitMax := fmtDur(row.wait.Max)
			if row.cutMax >= row.wait.Max {
				waitMax = "≥ " + waitMax
			}
			gap50, gap99 := "n/a", "n/a"
			if row.gapsKnown && row.gap.N > 0 {
				gap50 = withMark(row.c, fmtDur(row.gap.P50), row.gap.P50 <= tgtGapP50)
				gap99 = withMark(row.c, fmtDur(row.gap.P99), row.gap.P99 <= tgtGapP99)
			}
			wait99 := withMark(row.c, fmtDur(row.wait.P99), row.ideal > 0 && float64(row.wait.P99) <= tgtWaitVsIdeal*float64(row.ideal))
			t.add(row.c.name, fmtNum(row.acqPerSec), fmtDur(row.wait.P50), wait99, waitMax, fmtDur(row.ideal), gap50, gap99,
				withMark(row.c, fmt.Sprintf("%.2f", row.reqsPerAcq), row.reqsPerAcq <= tgtReqsPerAcq),
				fmt.Sprintf("%.1f", row.cmdsPerAcq),
				fmt.Sprintf("%d–%d", row.acqMin, row.acqMax),
				withMark(row.c, fmt.Sprintf("%.0f%%", row.minMean*100), row.minMean >= tgtMinMean),
				fmt.Sprint(row.cut), fmt.Sprint(row.fails), fmt.Sprint(row.violations))
		}
		t.write(b)
	}
}

func (r *report) writeHeld(b *strings.Builder) {
	fmt.Fprintf(b, "## 4. %d held locks under renewal for %v\n\n"+
		"Each contender that renews by itself takes %d locks on distinct keys with a TTL of %v and renewal every %v, then holds them. "+
		"**goroutines** and **heap** (HeapInuse after GC) are deltas against the moment before acquiring, taken at the end of the hold; "+
		"**rounds** = hold time / renewal interval; requests and commands are counted over the hold only; **keys alive** is DBSIZE at the end "+
		"of the hold / at its start (a lock may be more than one key: rueidislock's defaults write 3), which a lapsed lease would lower; "+
		"**left** is the goroutine delta after releasing all. "+
		"Targets: goroutines ≤ %d whatever the number of locks (O(1)), ≤ 1 request per %d locks per round.\n\n",
		r.set.heldLocks, r.set.heldDur, r.set.heldLocks, r.set.heldLease, r.set.heldLease/3, tgtGoroutines, tgtLocksPerReq)
	t := table{head: []string{"contender", "acquire all", "goroutines", "heap", "heap/lock", "rounds", "requests/round",
		"locks/request", "commands/round", "keys alive", "left"}}
	for _, row := range r.held {
		switch {
		case !row.applicable:
			t.add(row.c.name, "n/a: "+row.why)
			continue
		case row.err != nil:
			t.add(row.c.name, "error")
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
		t.add(row.c.name, fmtDur(row.acquireTime),
			withMark(row.c, fmt.Sprint(row.goroutines), row.goroutines <= tgtGoroutines),
			fmtBytes(float64(row.heap)), fmtBytes(float64(row.heap)/float64(row.locks)),
			fmt.Sprintf("%.1f", row.rounds),
			fmtNum(perRound),
			withMark(row.c, lpr, locksPerReq >= tgtLocksPerReq),
			fmtNum(float64(row.calls)/row.rounds),
			fmt.Sprintf("%d / %d", row.keysAtEnd, row.keysAtStart),
			fmt.Sprint(row.leftover))
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
	raw := r.rawUncontended()
	addRow(fmt.Sprintf("uncontended p50 ≤ %.2f× raw", tgtLatencyVsRaw), func(c contender) string {
		for _, row := range r.uncontended {
			if row.c.name == c.name && row.err == nil {
				if raw == nil {
					return "n/a (raw not run)"
				}
				v := float64(row.lat.P50) / float64(raw.lat.P50)
				return fmt.Sprintf("%.2f× %s", v, verdict(v <= tgtLatencyVsRaw))
			}
		}
		return ""
	})
	addRow(fmt.Sprintf("uncontended ≤ %d allocs/op", tgtAllocs), func(c contender) string {
		for _, row := range r.uncontended {
			if row.c.name == c.name && row.err == nil {
				return fmt.Sprintf("%.1f %s", row.allocs, verdict(row.allocs <= tgtAllocs))
			}
		}
		return ""
	})
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
	addRow(fmt.Sprintf("%d held locks: goroutines O(1) (≤ %d)", r.set.heldLocks, tgtGoroutines), func(c contender) string {
		if row := heldRowOf(c); row != nil {
			return fmt.Sprintf("%d %s", row.goroutines, verdict(row.goroutines <= tgtGoroutines))
		}
		return ""
	})
	addRow(fmt.Sprintf("%d held locks: ≤ 1 request per %d locks per round", r.set.heldLocks, tgtLocksPerReq), func(c contender) string {
		if row := heldRowOf(c); row != nil && row.rounds > 0 {
			perRound := float64(row.reqs) / row.rounds
			limit := float64(row.locks) / tgtLocksPerReq
			return fmt.Sprintf("%s/round (limit %s) %s", fmtNum(perRound), fmtNum(limit), verdict(perRound <= limit))
		}
		return ""
	})
	t.write(b)
}

func (r *report) writeProblems(b *strings.Builder) {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	for _, row := range r.uncontended {
		if row.err != nil {
			add("uncontended, %s: %v", row.c.name, row.err)
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
	for _, row := range r.held {
		if row.err != nil {
			add("held locks, %s: %v", row.c.name, row.err)
		} else if row.applicable && row.keysAtEnd < row.keysAtStart {
			add("held locks, %s: %d keys at the end of the hold, %d at its start: leases ran out", row.c.name, row.keysAtEnd, row.keysAtStart)
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
