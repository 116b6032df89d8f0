package redislock_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// renewalCalls is a client hook that records, for every pipeline the client
// sends, the keys of each script call in it. Acquire and Release send single
// commands, so the pipelines are the heartbeat's.
type renewalCalls struct {
	mu    sync.Mutex
	pipes [][][]string // per pipeline, per script call, its keys
}

func (r *renewalCalls) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (r *renewalCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (r *renewalCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var calls [][]string
		for _, cmd := range cmds {
			if name := cmd.Name(); name != "evalsha" && name != "eval" {
				continue
			}
			args := cmd.Args()
			n, _ := args[2].(int)
			keys := make([]string, 0, n)
			for _, k := range args[3 : 3+n] {
				keys = append(keys, k.(string))
			}
			calls = append(calls, keys)
		}
		if len(calls) > 0 {
			r.mu.Lock()
			r.pipes = append(r.pipes, calls)
			r.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}

// take returns the pipelines recorded since the last call.
func (r *renewalCalls) take() [][][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pipes
	r.pipes = nil
	return p
}

// waitRenewed polls calls until its pipelines renewed at least n keys,
// checking each with checkBatches, and fails t after d.
func waitRenewed(t *testing.T, calls *renewalCalls, n int, d time.Duration, group func(key string) string) {
	t.Helper()
	renewed := 0
	eventually(t, d, func() bool {
		renewed += checkBatches(t, calls.take(), group)
		return renewed >= n
	}, "as many renewals as twice the locks")
}

// checkBatches checks that every recorded pipeline sends each group's keys
// (group returns a key's server and hash slot, as a string) in as few script
// calls as 100 keys per call allow, and never mixes groups in a call. It
// returns how many keys were renewed.
func checkBatches(t *testing.T, pipes [][][]string, group func(key string) string) int {
	t.Helper()
	renewed := 0
	for i, calls := range pipes {
		perGroup := map[string]int{}
		for _, keys := range calls {
			require.NotEmpty(t, keys)
			g := group(keys[0])
			for _, k := range keys {
				require.Equal(t, g, group(k), "pipeline %d: one script call mixes %q and %q", i, keys[0], k)
			}
			assert.LessOrEqual(t, len(keys), 100, "pipeline %d: keys per call", i)
			perGroup[g] += len(keys)
			renewed += len(keys)
		}
		want := 0
		for _, n := range perGroup {
			want += (n + 99) / 100
		}
		assert.Equal(t, want, len(calls), "pipeline %d: script calls for %v keys per group", i, perGroup)
	}
	return renewed
}

// acquireMany acquires n locks through c, named name(i), with opts, and
// registers their release with t.Cleanup.
func acquireMany(t *testing.T, c redis.UniversalClient, n int, name func(i int) string, opts ...redislock.Option) []*redislock.Lock {
	t.Helper()
	ctx := context.Background()
	locks := make([]*redislock.Lock, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				l, err := redislock.New(c, name(i), opts...)
				if err == nil {
					err = l.Acquire(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
				locks[i] = l
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, l := range locks {
			_ = l.Release(ctx)
		}
	})
	return locks
}

// On one server, renewals go 100 keys per script call.
func TestHeartbeatBatchesOnOneServer(t *testing.T) {
	c := redistest.Client(t)
	calls := &renewalCalls{}
	c.AddHook(calls)
	prefix := redistest.Key(t) + ":"
	locks := acquireMany(t, c, 250, func(i int) string { return prefix + strconv.Itoa(i) }, redislock.WithTTL(time.Second))
	waitRenewed(t, calls, 2*len(locks), 3*time.Second, func(string) string { return "" })
	for _, l := range locks {
		require.True(t, l.Held(), l.Name())
	}
}

// On a Ring, renewals are batched per shard.
func TestHeartbeatBatchesPerRingShard(t *testing.T) {
	a, b := redistest.Start(t), redistest.Start(t)
	calls := &renewalCalls{}
	shardOf := map[string]string{}
	ring := redis.NewRing(&redis.RingOptions{
		Addrs: map[string]string{"a": a.Addr(), "b": b.Addr()},
		NewClient: func(o *redis.Options) *redis.Client {
			c := redis.NewClient(o)
			c.AddHook(calls)
			return c
		},
	})
	t.Cleanup(func() { _ = ring.Close() })
	ctx := context.Background()
	require.NoError(t, ring.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }))
	shard := func(key string) string {
		c, err := ring.GetShardClientForKey(key)
		require.NoError(t, err)
		return c.Options().Addr
	}

	prefix := redistest.Key(t) + ":"
	locks := acquireMany(t, ring, 300, func(i int) string { return prefix + strconv.Itoa(i) }, redislock.WithTTL(time.Second))
	for _, l := range locks {
		shardOf[l.Key()] = shard(l.Key())
	}
	waitRenewed(t, calls, 2*len(locks), 3*time.Second, func(key string) string { return shardOf[key] })
	for _, l := range locks {
		require.True(t, l.Held(), l.Name())
		owner, err := ring.HGet(ctx, l.Key(), "owner").Result()
		require.NoError(t, err)
		require.Equal(t, l.Owner(), owner)
	}
}

// tagOf returns the hash tag of key, the part between the first '{' and the
// next '}'.
func tagOf(key string) string {
	_, rest, _ := strings.Cut(key, "{")
	tag, _, _ := strings.Cut(rest, "}")
	return tag
}
