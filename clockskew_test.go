package redislock_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/clockshim"
	"github.com/redislock/redislock/internal/faultproxy"
	"github.com/redislock/redislock/internal/history"
	"github.com/redislock/redislock/internal/redistest"
)

// The shim must make the server's expiry run at its rate: at rate 2, a
// 1,000 ms key has 500 ms left after 250 ms of real time.
func TestClockShimScalesServerExpiry(t *testing.T) {
	srv := clockshim.Start(t, 2)
	c := srv.Client(t)
	ctx := context.Background()
	key := redistest.Key(t)

	before := time.Now()
	require.NoError(t, c.Set(ctx, key, "v", time.Second).Err())
	set := time.Now()
	time.Sleep(250*time.Millisecond - time.Since(before))
	asked := time.Now()
	left, err := c.PTTL(ctx, key).Result()
	require.NoError(t, err)
	answered := time.Now()

	// Between the server's SET and its PTTL, at least asked-set and at most
	// answered-before of real time passed; at rate 2 the key lost twice that.
	most := time.Second - 2*asked.Sub(set)
	least := time.Second - 2*answered.Sub(before)
	t.Logf("rate 2: PTTL %v after %v of real time (want %v..%v)", left, asked.Sub(before).Round(time.Millisecond), least, most)
	require.GreaterOrEqual(t, left, least.Truncate(time.Millisecond)-time.Millisecond)
	require.LessOrEqual(t, left, most+time.Millisecond)
}

// A server whose clock runs fast expires a lease early, by its own clock.
// The holder's margin (WithClockDrift, 1% by default) covers a server up to
// that much faster: at 1.005× the holder, cut off from Redis, is told before
// the rival gets in; at 1.05× the rival gets in first unless the margin is
// raised to cover it.
func TestClockSkewPartitionedHolder(t *testing.T) {
	cases := []struct {
		name    string
		rate    float64
		drift   float64 // 0: the default
		overlap bool    // the rival is expected to get in before the holder is told
	}{
		{"rate 1.005, default drift", 1.005, 0, false},
		{"rate 1.05, default drift", 1.05, 0, true},
		{"rate 1.05, drift 0.06", 1.05, 0.06, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := clockshim.Start(t, tc.rate)
			rivalClient := srv.Client(t)
			const ttl = 2 * time.Second
			opts := []redislock.Option{redislock.WithTTL(ttl)}
			if tc.drift != 0 {
				opts = append(opts, redislock.WithClockDrift(tc.drift))
			}
			pairs, rounds := 15, sized(2, 10)
			trials := make([]*skewTrial, pairs*rounds)
			start := time.Now()
			var wg sync.WaitGroup
			for p := range pairs {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(p), uint64(time.Now().UnixNano())))
					for r := range rounds {
						tr := &skewTrial{}
						trials[p*rounds+r] = tr
						tr.run(srv.Addr(), rivalClient, redistest.Key(t), opts, ttl, rng)
					}
				})
			}
			wg.Wait()

			var first, late int
			var detect []time.Duration
			minLead, maxLag := time.Duration(1<<62), time.Duration(0)
			for i, tr := range trials {
				for _, f := range tr.failures {
					t.Errorf("trial %d: %s", i, f)
				}
				if tr.lostAt != 0 {
					detect = append(detect, time.Duration(tr.lostAt-tr.faultAt))
				}
				switch {
				case tr.rivalFirst:
					first++
					maxLag = max(maxLag, time.Duration(tr.lostAt-tr.rivalAt))
				case tr.late:
					late++
				case tr.lostAt != 0 && tr.rivalAt != 0:
					minLead = min(minLead, time.Duration(tr.rivalAt-tr.lostAt))
				}
			}
			notes := fmt.Sprintf("server_clock_rate=%v drift=%v ttl=%v rival_first=%d late_signals=%d", tc.rate, tc.drift, ttl, first, late)
			if minLead != 1<<62 {
				notes += fmt.Sprintf(" min_lead=%v", minLead.Round(time.Millisecond))
			}
			if first > 0 {
				notes += fmt.Sprintf(" max_holder_told_after_rival=%v", maxLag.Round(time.Millisecond))
			}
			report(t, figures{Scenario: "clock skew, holder partitioned", Trials: len(trials), Overlaps: first + late, MaxDetect: maxDur(detect...), Elapsed: time.Since(start), Notes: notes})
			if tc.overlap {
				// The figure is the point; at 1.05× the rival gets in
				// about 3.8% of the TTL before the holder's deadline.
				require.NotZero(t, first, "the rival never got in before the holder was told: the margin covers 1.05×?")
			} else {
				require.Zero(t, first, "the rival got in while the holder still counted on its lease")
			}
		})
	}
}

// A skewTrial is one hold cut off from a server with a skewed clock.
type skewTrial struct {
	faultAt         int64 // history.Now when the proxy was blackholed
	rivalAt, lostAt int64 // history.Now; 0: never
	rivalFirst      bool  // Held() was still true when the rival's acquire returned
	late            bool  // Held() was false but Lost() not yet closed
	failures        []string
}

func (tr *skewTrial) fail(format string, args ...any) {
	tr.failures = append(tr.failures, fmt.Sprintf(format, args...))
}

// run holds name through a fault proxy to addr, blackholes the proxy at a
// random phase of the heartbeat, and has a rival on rivalClient acquire
// name the moment the server lets go. It records whether the holder had
// been told by then.
func (tr *skewTrial) run(addr string, rivalClient *redis.Client, name string, opts []redislock.Option, ttl time.Duration, rng *rand.Rand) {
	proxy, err := faultproxy.New(addr)
	if err != nil {
		tr.fail("proxy: %v", err)
		return
	}
	defer proxy.Close()
	hc := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
	defer hc.Close()
	holder, err := redislock.New(hc, name, opts...)
	if err != nil {
		tr.fail("New: %v", err)
		return
	}
	rival, err := redislock.New(rivalClient, name, opts...)
	if err != nil {
		tr.fail("New: %v", err)
		return
	}
	// Dial first: the acquire's validity runs from the start of its request,
	// so a dial inside it would widen the margin by the dial's time.
	if err := hc.Ping(context.Background()).Err(); err != nil {
		tr.fail("ping: %v", err)
		return
	}
	h, err := holdLock(holder, 10*time.Second)
	if err != nil {
		tr.fail("holder: %v", err)
		return
	}
	time.Sleep(time.Duration(rng.Int64N(int64(ttl / 3))))
	tr.faultAt = history.Now()
	proxy.Blackhole()

	ctx, cancel := context.WithTimeout(context.Background(), 3*ttl+10*time.Second)
	err = grab(ctx, rivalClient, rival)
	cancel()
	if err != nil {
		tr.fail("rival did not acquire: %v", err)
	} else {
		tr.rivalAt = history.Now()
		held := holder.Held() // compares the clock with the holder's deadline
		live, err := h.live()
		if err != nil {
			tr.fail("%v", err)
		}
		tr.rivalFirst = held
		tr.late = !held && live
		if err := rival.Release(context.Background()); err != nil {
			tr.fail("rival release: %v", err)
		}
	}
	proxy.Heal()
	// The blackhole ate requests in flight: fail their connections rather
	// than wait for go-redis's read timeout.
	proxy.DropConnections()
	wait := time.NewTimer(10 * time.Second)
	select {
	case <-h.lost:
	case <-wait.C:
	}
	wait.Stop()
	tr.lostAt, err = h.finish(10 * time.Second)
	if tr.lostAt == 0 {
		tr.fail("the holder was never told: WithLock returned %v", err)
	}
	if tr.late && tr.lostAt != 0 && time.Duration(tr.lostAt-tr.rivalAt) > time.Second {
		tr.fail("the lost signal came %v after the deadline had passed", time.Duration(tr.lostAt-tr.rivalAt))
	}
}

// grab takes rival's lock the moment the server lets go of it: it sleeps
// until the key is close to expiring by the server's account, then tries
// every millisecond. (Acquire's own wait is as quick only on an idle
// machine: its sleeps are timers, which a loaded one runs late.)
func grab(ctx context.Context, c *redis.Client, rival *redislock.Lock) error {
	for ctx.Err() == nil {
		left, err := c.PTTL(ctx, rival.Key()).Result()
		if err != nil {
			return err
		}
		if left > 50*time.Millisecond {
			time.Sleep(left - 50*time.Millisecond) // real time, at least as long as the server's
			continue
		}
		ok, err := rival.TryAcquire(ctx)
		if ok || err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return ctx.Err()
}
