package redislock_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/history"
	"github.com/redislock/redislock/internal/redistest"
	"github.com/redislock/redislock/internal/workerproc"
)

// contendConfig tells a worker process how to contend.
type contendConfig struct {
	Addr        string
	Keys        []string // lock names
	Counters    []string // one per key: the read-modify-write counter
	Goroutines  int
	ClientBase  int // client IDs of this process start here
	Duration    time.Duration
	MaxSections int64 // for this process
	TTL         time.Duration
	Out         string // path prefix of the result files

	// Work pauses for Gap at the end of every Epoch, counted from Origin
	// (history.Now of the parent): every key is then free and no call is
	// pending, and the linearizability check can cut the history there.
	Origin     int64
	Epoch, Gap time.Duration
}

// contendResult is what a worker process reports, besides its history.
type contendResult struct {
	Sections []int64 // per key
	Nested   int64   // reentrant levels taken inside a section
	Losses   int     // holds whose lost signal fired: none expected
	Errors   []string
}

// Scenario 1: no faults. Goroutines in several processes contend on a few
// keys; inside each critical section they increment a counter in Redis with
// a GET and a SET, which loses updates unless the section is exclusive.
// Every hold is recorded on the machine's monotonic clock and checked for
// overlaps, every operation for linearizability against a reentrant mutex.
func TestReliabilityNoFaults(t *testing.T) {
	if !history.SharedClock {
		t.Skip("needs a monotonic clock shared between processes (Linux)")
	}
	srv := redistest.Start(t)
	accountFor(t, srv)
	const procs, goroutines, nkeys = 3, 8, 4
	duration := sized(20*time.Second, 15*time.Minute)
	maxSections := sized(int64(100_000), int64(150_000))

	keys := make([]string, nkeys)
	counters := make([]string, nkeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("nofault:%d", i)
		counters[i] = fmt.Sprintf("nofault:counter:%d", i)
	}
	dir := t.TempDir()
	start, origin := time.Now(), history.Now()
	ps := workerproc.Start(t, "TestReliabilityWorker", procs, func(i int) any {
		return contendConfig{
			Addr: srv.Addr(), Keys: keys, Counters: counters,
			Goroutines: goroutines, ClientBase: i * goroutines,
			Duration: duration, MaxSections: maxSections / procs,
			TTL: 10 * time.Second, Out: filepath.Join(dir, fmt.Sprint(i)),
			Origin: origin, Epoch: time.Second, Gap: 50 * time.Millisecond,
		}
	})
	var rec history.Recorder
	var total contendResult
	total.Sections = make([]int64, nkeys)
	for i, p := range ps {
		require.NoError(t, p.Wait(duration+2*time.Minute), "worker %d", i)
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)) + ".json")
		require.NoError(t, err)
		var res contendResult
		require.NoError(t, json.Unmarshal(b, &res))
		for k, n := range res.Sections {
			total.Sections[k] += n
		}
		total.Nested += res.Nested
		total.Losses += res.Losses
		total.Errors = append(total.Errors, res.Errors...)
		f, err := os.Open(filepath.Join(dir, fmt.Sprint(i)) + ".history")
		require.NoError(t, err)
		_, err = rec.ReadFrom(f)
		f.Close()
		require.NoError(t, err)
	}
	elapsed := time.Since(start)
	assert.Empty(t, total.Errors, "errors in workers")
	assert.Zero(t, total.Losses, "holds lost without a fault")

	c := srv.Client(t)
	var sections int64
	for k := range keys {
		got, err := c.Get(context.Background(), counters[k]).Int64()
		if errors.Is(err, redis.Nil) {
			got, err = 0, nil
		}
		require.NoError(t, err)
		assert.Equal(t, total.Sections[k], got, "counter of key %d: lost updates mean overlapping sections", k)
		sections += total.Sections[k]
	}
	holds := rec.Holds()
	assert.EqualValues(t, sections, len(holds))
	overlaps := history.Overlaps(holds)
	for i, o := range overlaps {
		if i == 10 {
			t.Errorf("... and %d more", len(overlaps)-10)
			break
		}
		t.Errorf("overlap: %v", o)
	}

	inversions := history.TokenInversions(holds)
	for i, o := range inversions {
		if i == 10 {
			break
		}
		t.Errorf("fencing token did not increase: %v (tokens %d, %d)", o, o.A.Token, o.B.Token)
	}
	assert.Empty(t, inversions, "fencing tokens must increase with every fresh acquisition")

	ops := rec.Ops()
	checkStart := time.Now()
	res, info := history.CheckLinearizable(ops, sized(2*time.Minute, 30*time.Minute))
	checkTook := time.Since(checkStart)
	if res == porcupine.Illegal {
		path := filepath.Join(t.TempDir(), "history.html")
		if err := porcupine.VisualizePath(history.MutexModel, info, path); err == nil {
			t.Logf("visualization: %s", path)
		}
	}
	assert.Equal(t, porcupine.Ok, res, "the history of %d operations is not linearizable against a reentrant mutex", len(ops))

	report(t, figures{
		Scenario: "1 no faults", Trials: procs * goroutines, Sections: sections, Overlaps: len(overlaps),
		Elapsed: elapsed,
		Notes: fmt.Sprintf("processes=%d goroutines=%d keys=%d nested=%d losses=%d token_inversions=%d ops=%d porcupine=%v (%d chunks) in %v",
			procs, procs*goroutines, nkeys, total.Nested, total.Losses, len(inversions), len(ops), res, history.Chunks(ops), checkTook.Round(time.Millisecond)),
	})
}

// TestReliabilityWorker is the worker process of TestReliabilityNoFaults;
// run directly, it does nothing.
func TestReliabilityWorker(t *testing.T) {
	cfg, ok := workerproc.Config[contendConfig](t)
	if !ok {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: cfg.Addr, PoolSize: 2 * cfg.Goroutines})
	defer c.Close()
	var rec history.Recorder
	res := contend(cfg, c, &rec)
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg.Out+".json", b, 0o644))
	f, err := os.Create(cfg.Out + ".history")
	require.NoError(t, err)
	_, err = rec.WriteTo(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// contend runs cfg.Goroutines contenders until cfg.Duration has passed or
// cfg.MaxSections sections are done, and waits for them.
func contend(cfg contendConfig, c *redis.Client, rec *history.Recorder) contendResult {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		res      = contendResult{Sections: make([]int64, len(cfg.Keys))}
		sections atomic.Int64
		nested   atomic.Int64
		losses   atomic.Int64
	)
	deadline := time.Now().Add(cfg.Duration)
	fail := func(format string, args ...any) {
		mu.Lock()
		if len(res.Errors) < 20 {
			res.Errors = append(res.Errors, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	for g := range cfg.Goroutines {
		client := cfg.ClientBase + g
		locks := make([]*redislock.Lock, len(cfg.Keys))
		for k, name := range cfg.Keys {
			l, err := redislock.New(c, name, redislock.WithTTL(cfg.TTL))
			if err != nil {
				fail("New: %v", err)
				return res
			}
			locks[k] = l
		}
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(client), uint64(time.Now().UnixNano())))
			mine := make([]int64, len(cfg.Keys))
			defer func() {
				mu.Lock()
				for k, n := range mine {
					res.Sections[k] += n
				}
				mu.Unlock()
			}()
			for time.Now().Before(deadline) && sections.Add(1) <= cfg.MaxSections {
				k := rng.IntN(len(cfg.Keys))
				l, key := locks[k], cfg.Keys[k]
				op := func(kind history.Kind, call int64, ok bool) {
					rec.AddOp(history.Op{Client: client, Key: key, Kind: kind, OK: ok, Call: call, Return: history.Now()})
				}
				// Wait out the gap at the end of the epoch, and give up
				// waiting for the lock when the next gap begins.
				now := history.Now()
				epochEnd := cfg.Origin + ((now-cfg.Origin)/int64(cfg.Epoch)+1)*int64(cfg.Epoch)
				if workEnd := epochEnd - int64(cfg.Gap); now >= workEnd {
					sections.Add(-1)
					time.Sleep(time.Duration(epochEnd - now))
					continue
				}
				ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Duration(epochEnd-int64(cfg.Gap)-now)))
				t0 := history.Now()
				if rng.IntN(4) == 0 {
					ok, err := l.TryAcquire(ctx)
					op(history.TryAcquire, t0, ok)
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						fail("TryAcquire: %v", err)
					}
					if !ok {
						sections.Add(-1)
						cancel()
						continue
					}
				} else {
					err := l.Acquire(ctx)
					op(history.Acquire, t0, err == nil)
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							fail("Acquire: %v", err)
						}
						sections.Add(-1)
						cancel()
						continue
					}
				}
				cancel()
				ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
				start := history.Now()
				lost, token := l.Lost(), l.Token()
				if err := section(ctx, c, l, cfg.Counters[k], rng, op, &nested); err != nil {
					fail("section: %v", err)
				}
				end := history.Now()
				wasLost := false
				select {
				case <-lost:
					wasLost = true
					losses.Add(1)
				default:
				}
				rec.AddHold(history.Hold{Client: client, Key: key, Start: start, End: end, Lost: wasLost, Token: token})
				t0 = history.Now()
				err := l.Release(ctx)
				op(history.Release, t0, err == nil)
				if err != nil {
					fail("Release: %v", err)
				}
				cancel()
				mine[k]++
			}
		})
	}
	wg.Wait()
	res.Nested = nested.Load()
	res.Losses = int(losses.Load())
	return res
}

// section is the critical section: a read-modify-write of counter, now and
// then inside a reentrant level of the same lock.
func section(ctx context.Context, c *redis.Client, l *redislock.Lock, counter string, rng *rand.Rand,
	op func(history.Kind, int64, bool), nested *atomic.Int64) error {
	if rng.IntN(8) == 0 {
		t0 := history.Now()
		err := l.Acquire(ctx)
		op(history.Acquire, t0, err == nil)
		if err != nil {
			return fmt.Errorf("reentrant Acquire: %w", err)
		}
		nested.Add(1)
		defer func() {
			t0 := history.Now()
			err := l.Release(ctx)
			op(history.Release, t0, err == nil)
		}()
	}
	n, err := c.Get(ctx, counter).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	return c.Set(ctx, counter, n+1, 0).Err()
}
