package redislock_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/clustertest"
)

// TestClusterPrimitives runs the semaphore and the RW lock on a real Redis
// Cluster of 3 masters: contention on names spread over every master,
// checked by a counter in each name's slot, and a live reshard of the slot
// of a semaphore and an RW lock while both are held and waited for.
func TestClusterPrimitives(t *testing.T) {
	cl := clustertest.StartCluster(t, 3, 0)
	ctx := context.Background()

	t.Run("contention over every master", func(t *testing.T) {
		start := time.Now()
		clients := []*redis.ClusterClient{cl.Client(t), cl.Client(t)}
		const names, perName, rounds, limit = 6, 4, 8, 2
		semMasters, rwMasters := map[string]bool{}, map[string]bool{}
		var violations, sections, most atomic.Int64
		var wg sync.WaitGroup
		for k := range names {
			sem, rw := "csem:"+strconv.Itoa(k), "crw:"+strconv.Itoa(k)
			semMasters[cl.MasterForKey(t, redislock.DefaultKeyPrefix+sem)] = true
			rwMasters[cl.MasterForKey(t, redislock.DefaultKeyPrefix+rw)] = true
			for g := range perName {
				c := clients[g%len(clients)]
				s := newSemaphore(t, c, sem, limit)
				l := newRWLock(t, c, rw)
				enter := func(name string, d int64) int64 {
					n, err := c.IncrBy(ctx, sectionState(name), d).Result()
					assert.NoError(t, err)
					return n
				}
				wg.Go(func() {
					for r := range rounds {
						err := s.WithLock(ctx, func(context.Context) error {
							n := enter(sem, 1)
							if n > limit {
								violations.Add(1)
							}
							for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
							}
							time.Sleep(time.Millisecond)
							enter(sem, -1)
							return nil
						})
						if !assert.NoError(t, err) {
							return
						}
						write := (g+r)%3 == 0
						lk, d, ok := l.Reader(), int64(1), func(n int64) bool { return n < 1000 }
						if write {
							lk, d, ok = l.Writer(), 1000, func(n int64) bool { return n == 1000 }
						}
						err = lk.WithLock(ctx, func(context.Context) error {
							if !ok(enter(rw, d)) {
								violations.Add(1)
							}
							time.Sleep(time.Millisecond)
							enter(rw, -d)
							return nil
						})
						if !assert.NoError(t, err) {
							return
						}
						sections.Add(2)
					}
				})
			}
		}
		wg.Wait()
		assert.Zero(t, violations.Load(), "too many inside a semaphore, or a reader with a writer, or two writers")
		assert.EqualValues(t, limit, most.Load(), "the permits were used in parallel")
		assert.Len(t, semMasters, 3, "semaphore keys should spread over every master")
		assert.Len(t, rwMasters, 3, "RW lock keys should spread over every master")
		for k := range names {
			for _, name := range []string{"csem:" + strconv.Itoa(k), "crw:" + strconv.Itoa(k)} {
				assert.Zero(t, clients[0].Exists(ctx, redislock.DefaultKeyPrefix+name).Val(), "%s left after the last release", name)
			}
		}
		report(t, figures{Scenario: "C1 cluster contention", Trials: 2 * names * perName, Sections: sections.Load(),
			Overlaps: int(violations.Load()), Elapsed: time.Since(start),
			Notes: fmt.Sprintf("masters=3 semaphores=%d(limit %d) rwlocks=%d most_inside=%d", names, limit, names, most.Load())})
	})

	t.Run("reshard while held and waited for", func(t *testing.T) {
		start := time.Now()
		c, wc := cl.Client(t), cl.Client(t)
		// One slot for both names. A TTL of 2 s keeps the heartbeat renewing
		// across the move; the waiters' 10 s poll interval leaves only the
		// sharded release message, resubscribed on the new master, to wake
		// them quickly.
		const ttl = 2 * time.Second
		slow := redislock.WithRetryBackoff(10*time.Second, 10*time.Second)
		semName, rwName := "reshard{prims}:sem", "reshard{prims}:rw"
		holders := []*redislock.Lock{
			newSemaphore(t, c, semName, 2, redislock.WithTTL(ttl)),
			newSemaphore(t, c, semName, 2, redislock.WithTTL(ttl)),
			newRWLock(t, c, rwName, redislock.WithTTL(ttl)).Writer(),
		}
		var tokens []int64
		for _, h := range holders {
			require.NoError(t, h.Acquire(ctx))
			tokens = append(tokens, h.Token())
		}
		semWaiter := newSemaphore(t, wc, semName, 2, slow)
		rwWaiter := newRWLock(t, wc, rwName, slow).Reader()
		src := cl.MasterForKey(t, holders[0].Key())
		require.Equal(t, src, cl.MasterForKey(t, holders[2].Key()))
		got := make(chan *redislock.Lock, 2)
		var wg sync.WaitGroup
		for _, w := range []*redislock.Lock{semWaiter, rwWaiter} {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
				defer cancel()
				if assert.NoError(t, w.Acquire(ctx), w.Name()) {
					got <- w
				}
			})
		}
		defer wg.Wait()
		eventually(t, 5*time.Second, func() bool { return shardChannels(t, src) == 2 }, "both waiters subscribed on the slot's shard")
		time.Sleep(20 * time.Millisecond) // their attempts fail and their long sleeps begin

		dst := otherMaster(t, cl, src)
		slot, err := c.ClusterKeySlot(ctx, holders[0].Key()).Result()
		require.NoError(t, err)
		cl.MoveSlot(t, int(slot), dst)
		require.Equal(t, dst, cl.MasterForKey(t, holders[0].Key()))
		moved := time.Since(start)

		// Renewals follow the slot: the holds outlive their TTL, and nobody
		// gets in meanwhile.
		heldFor(t, holders, time.Now().Add(ttl+500*time.Millisecond))
		select {
		case w := <-got:
			t.Fatalf("%s acquired while the holders held", w.Name())
		default:
		}
		n, err := redislock.SemaphoreHolders(ctx, c, semName)
		require.NoError(t, err)
		assert.Equal(t, 2, n, "both permits are held on the new master")
		eventually(t, 5*time.Second, func() bool { return shardChannels(t, dst) == 2 }, "the waiters subscribed again on the new master")

		var wakes []time.Duration
		for i, tc := range []struct {
			holder, waiter *redislock.Lock
		}{{holders[0], semWaiter}, {holders[2], rwWaiter}} {
			require.NoError(t, tc.holder.Release(ctx))
			released := time.Now()
			select {
			case w := <-got:
				require.Equal(t, tc.waiter, w, "the waiter of the released name got in")
				wake := time.Since(released)
				wakes = append(wakes, wake)
				assert.Less(t, wake, time.Second, "%s: only the resubscribed message can explain a quick wake-up", w.Name())
				assert.Greater(t, w.Token(), tokens[2*i], "%s: tokens increase across the reshard", w.Name())
			case <-time.After(15 * time.Second):
				t.Fatalf("%s not woken after the reshard", tc.waiter.Name())
			}
		}
		for _, l := range []*redislock.Lock{holders[1], semWaiter, rwWaiter} {
			require.NoError(t, l.Release(ctx))
		}
		for _, name := range []string{semName, rwName} {
			assert.Zero(t, c.Exists(ctx, redislock.DefaultKeyPrefix+name).Val(), "%s left after the last release", name)
		}
		report(t, figures{Scenario: "C2 cluster reshard while held and waited for", Trials: 2, Elapsed: time.Since(start),
			Notes: fmt.Sprintf("move_done_after=%v holds_survived=true release_to_acquire=%s", moved.Round(time.Millisecond), durs(wakes))})
	})
}
