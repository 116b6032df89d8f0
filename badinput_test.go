package redislock_test

import (
	"context"
	"errors"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// uncomparableClient is a client value that cannot be compared, which the
// heartbeat's registry and context re-entry could not key on.
type uncomparableClient struct {
	redis.UniversalClient
	_ []int
}

// notHeldAfter checks that a failed call left l's hold as it was: still
// held at depth want, its lost signal not fired.
func notDropped(t *testing.T, l *redislock.Lock, want int) {
	t.Helper()
	assert.Equal(t, want, l.Count(), "a failed call changed the depth")
	assert.Equal(t, want > 0, l.Held())
	select {
	case <-l.Lost():
		t.Error("a failed call fired the lost signal")
	default:
	}
}

// droppedLoudly checks that l holds nothing and said so: its lost signal
// has fired.
func droppedLoudly(t *testing.T, l *redislock.Lock) {
	t.Helper()
	assert.Zero(t, l.Count())
	assert.False(t, l.Held())
	select {
	case <-l.Lost():
	default:
		t.Error("the hold is gone but the lost signal did not fire")
	}
}

// TestBadInput feeds the package what it should refuse or survive. Each
// case must end with a typed error (one of the package's sentinels, a
// context error or a go-redis error), no panic, and no hold dropped
// without its lost signal firing.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	never := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // New makes no call
	t.Cleanup(func() { _ = never.Close() })
	var nilClient *redis.Client

	invalid := func(client redis.UniversalClient, name string, opts ...redislock.Option) func(t *testing.T) {
		return func(t *testing.T) {
			l, err := redislock.New(client, name, opts...)
			assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
			assert.Nil(t, l)
		}
	}
	// works takes, re-enters, extends and releases a lock named name.
	works := func(name string, opts ...redislock.Option) func(t *testing.T) {
		return func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, name, opts...)
			t.Cleanup(func() { _ = c.Del(ctx, l.Key()) })
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, l.Extend(ctx, 0))
			ttl, err := l.TTL(ctx)
			require.NoError(t, err)
			assert.Positive(t, ttl)
			assert.Equal(t, l.Owner(), c.HGet(ctx, l.Key(), "owner").Val(), "the key must be stored under its exact name")
			require.NoError(t, l.Release(ctx))
			require.NoError(t, l.Release(ctx))
			assert.Zero(t, c.Exists(ctx, l.Key()).Val())
		}
	}
	// wrongType stores a foreign value at the lock's key and checks that
	// the lock refuses to touch it.
	wrongType := func(store func(c *redis.Client, key string) error) func(t *testing.T) {
		return func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t), redislock.WithWaitTimeout(time.Second))
			require.NoError(t, store(c, l.Key()))
			t.Cleanup(func() { _ = c.Del(ctx, l.Key()) })
			before, err := c.Dump(ctx, l.Key()).Result()
			require.NoError(t, err)
			assert.ErrorIs(t, l.Acquire(ctx), redislock.ErrWrongType)
			ok, err := l.TryAcquire(ctx)
			assert.False(t, ok)
			assert.ErrorIs(t, err, redislock.ErrWrongType)
			assert.ErrorIs(t, l.Release(ctx), redislock.ErrNotHeld)
			after, err := c.Dump(ctx, l.Key()).Result()
			require.NoError(t, err)
			assert.Equal(t, before, after, "the foreign value must be left alone")
			notDropped(t, l, 0)
		}
	}
	// corruptCount stores count in a held lock's hash, then re-enters and
	// releases: each call either works or fails with a typed error, and a
	// hold that ends says so.
	corruptCount := func(count string) func(t *testing.T) {
		return func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t), redislock.WithTTL(5*time.Second))
			t.Cleanup(func() { _ = c.Del(ctx, l.Key()) })
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, c.HSet(ctx, l.Key(), "count", count).Err())
			err := l.Acquire(ctx)
			switch {
			case err == nil:
				notDropped(t, l, 2)
			case errors.Is(err, redislock.ErrWrongType):
				notDropped(t, l, 1)
			default:
				t.Fatalf("re-entry with count %q: untyped error %v", count, err)
			}
			for l.Count() > 0 {
				if err := l.Release(ctx); err != nil {
					assert.ErrorIs(t, err, redislock.ErrNotHeld)
					droppedLoudly(t, l)
				}
			}
		}
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		// Clients and names.
		{"nil client", invalid(nil, "n")},
		{"typed nil client", invalid(nilClient, "n")},
		{"uncomparable client", invalid(uncomparableClient{UniversalClient: never}, "n")},
		{"empty name", invalid(never, "")},
		{"1 MiB name", works(strings.Repeat("n", 1<<20))},
		{"name with braces", works("}{a}b{{}")},
		{"name with NUL bytes", works("\x00a\x00b\x00")},
		{"name not UTF-8", works("\xff\xfe\xc0")},
		{"prefix with NUL and braces", works("n", redislock.WithKeyPrefix("\x00{p}"))},

		// Durations out of range, in options and in Extend.
		{"TTL zero", invalid(never, "n", redislock.WithTTL(0))},
		{"TTL negative", invalid(never, "n", redislock.WithTTL(-time.Hour))},
		{"TTL below 1ms", invalid(never, "n", redislock.WithTTL(999*time.Microsecond))},
		{"TTL within its margin", invalid(never, "n", redislock.WithTTL(2*time.Millisecond))},
		{"TTL MinInt64", invalid(never, "n", redislock.WithTTL(math.MinInt64))},
		{"TTL MaxInt64", works("n"+strconv.Itoa(int(time.Now().UnixNano())), redislock.WithTTL(math.MaxInt64))},
		{"heartbeat zero", invalid(never, "n", redislock.WithHeartbeat(0))},
		{"heartbeat negative", invalid(never, "n", redislock.WithHeartbeat(math.MinInt64))},
		{"heartbeat past the validity", invalid(never, "n", redislock.WithTTL(time.Second), redislock.WithHeartbeat(990*time.Millisecond))},
		{"heartbeat and none", invalid(never, "n", redislock.WithHeartbeat(time.Second), redislock.WithoutHeartbeat())},
		{"wait timeout negative", invalid(never, "n", redislock.WithWaitTimeout(-1))},
		{"backoff zero", invalid(never, "n", redislock.WithRetryBackoff(0, 0))},
		{"backoff negative", invalid(never, "n", redislock.WithRetryBackoff(-time.Second, time.Second))},
		{"backoff min above max", invalid(never, "n", redislock.WithRetryBackoff(time.Second, time.Millisecond))},
		{"empty prefix", invalid(never, "n", redislock.WithKeyPrefix(""))},
		{"empty owner", invalid(never, "n", redislock.WithOwner(""))},
		{"nil option", invalid(never, "n", nil)},
		{"Extend out of range", func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t), redislock.WithTTL(time.Second))
			require.NoError(t, l.Acquire(ctx))
			for _, d := range []time.Duration{-1, math.MinInt64, time.Microsecond, 2 * time.Millisecond} {
				assert.ErrorIs(t, l.Extend(ctx, d), redislock.ErrInvalidArgument, "Extend(%v)", d)
				notDropped(t, l, 1)
			}
			require.NoError(t, l.Release(ctx))
		}},

		// Keys that are not locks.
		{"WRONGTYPE string", wrongType(func(c *redis.Client, k string) error { return c.Set(ctx, k, "x", time.Minute).Err() })},
		{"WRONGTYPE list", wrongType(func(c *redis.Client, k string) error { return c.RPush(ctx, k, "x").Err() })},
		{"WRONGTYPE set", wrongType(func(c *redis.Client, k string) error { return c.SAdd(ctx, k, "x").Err() })},
		{"WRONGTYPE sorted set", wrongType(func(c *redis.Client, k string) error {
			return c.ZAdd(ctx, k, redis.Z{Score: 1, Member: "x"}).Err()
		})},
		{"WRONGTYPE stream", wrongType(func(c *redis.Client, k string) error {
			return c.XAdd(ctx, &redis.XAddArgs{Stream: k, Values: []any{"f", "v"}}).Err()
		})},
		{"hash that is not a lock", func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t), redislock.WithWaitTimeout(20*time.Millisecond))
			require.NoError(t, c.HSet(ctx, l.Key(), "foo", "bar").Err())
			t.Cleanup(func() { _ = c.Del(ctx, l.Key()) })
			ok, err := l.TryAcquire(ctx)
			assert.NoError(t, err)
			assert.False(t, ok, "a hash without an owner is someone else's")
			err = l.Acquire(ctx)
			assert.ErrorIs(t, err, redislock.ErrNotAcquired)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Equal(t, map[string]string{"foo": "bar"}, c.HGetAll(ctx, l.Key()).Val())
		}},
		{"count missing", func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t))
			t.Cleanup(func() { _ = c.Del(ctx, l.Key()) })
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, c.HDel(ctx, l.Key(), "count").Err())
			assert.ErrorIs(t, l.Acquire(ctx), redislock.ErrWrongType)
			notDropped(t, l, 1)
			require.NoError(t, l.Release(ctx))
		}},
		{"count not a number", corruptCount("many")},
		{"count empty", corruptCount("")},
		{"count nan", corruptCount("nan")},
		{"count inf", corruptCount("inf")},
		{"count negative", corruptCount("-3")},
		{"count zero", corruptCount("0")},
		{"count fraction", corruptCount("1.5")},
		{"count hex", corruptCount("0x10")},
		{"count 2^63", corruptCount("9223372036854775808")},

		// Redis failing.
		{"read-only replica", func(t *testing.T) {
			srv := redistest.Start(t)
			c := srv.Client(t)
			l := newLock(t, c, "held", redislock.WithTTL(500*time.Millisecond))
			require.NoError(t, l.Acquire(ctx))
			srv.Do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(deadPort(t)))
			other := newLock(t, c, "other")
			err := other.Acquire(ctx)
			var rerr redis.Error
			assert.ErrorAs(t, err, &rerr, "a refused write is a Redis error")
			assert.Contains(t, err.Error(), "READONLY")
			notDropped(t, other, 0)
			// The held lock cannot be renewed: it must be reported lost,
			// not kept silently.
			closedWithin(t, l.Lost(), 5*time.Second)
			droppedLoudly(t, l)
			err = l.Release(ctx)
			assert.ErrorIs(t, err, redislock.ErrNotHeld)
			assert.ErrorIs(t, err, redislock.ErrLockLost)
		}},
		{"release refused", func(t *testing.T) {
			srv := redistest.Start(t)
			c := srv.Client(t)
			l := newLock(t, c, "held", redislock.WithTTL(10*time.Second))
			require.NoError(t, l.Acquire(ctx))
			srv.Do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(deadPort(t)))
			err := l.Release(ctx)
			var rerr redis.Error
			assert.ErrorAs(t, err, &rerr, "an unconfirmed release must say so")
			assert.Equal(t, 1, int(c.Exists(ctx, l.Key()).Val()), "the key stays until its TTL")
		}},
		{"server unreachable", func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(deadPort(t))), MaxRetries: -1})
			t.Cleanup(func() { _ = c.Close() })
			l := newLock(t, c, "n")
			err := l.Acquire(ctx)
			var nerr net.Error
			assert.ErrorAs(t, err, &nerr)
			ok, err := l.TryAcquire(ctx)
			assert.False(t, ok)
			assert.ErrorAs(t, err, &nerr)
			notDropped(t, l, 0)
		}},
		{"closed client", func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
			l := newLock(t, c, redistest.Key(t))
			require.NoError(t, c.Close())
			assert.ErrorIs(t, l.Acquire(ctx), redis.ErrClosed)
			ok, err := l.TryAcquire(ctx)
			assert.False(t, ok)
			assert.ErrorIs(t, err, redis.ErrClosed)
			notDropped(t, l, 0)
		}},
		{"client closed while held", func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: redistest.Addr(t)})
			l := newLock(t, c, redistest.Key(t), redislock.WithTTL(300*time.Millisecond))
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, c.Close())
			closedWithin(t, l.Lost(), 5*time.Second)
			droppedLoudly(t, l)
			assert.ErrorIs(t, l.Release(ctx), redislock.ErrNotHeld)
		}},

		// Contexts already done, at every call.
		{"cancelled context", func(t *testing.T) { doneContext(t, cancelled, context.Canceled) }},
		{"expired context", func(t *testing.T) { doneContext(t, expired, context.DeadlineExceeded) }},

		// Misuse.
		{"release more than acquired", func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t))
			require.NoError(t, l.Acquire(ctx))
			require.NoError(t, l.Release(ctx))
			err := l.Release(ctx)
			assert.ErrorIs(t, err, redislock.ErrNotHeld)
			assert.NotErrorIs(t, err, redislock.ErrLockLost)
		}},
		{"calls without a hold", func(t *testing.T) {
			c := redistest.Client(t)
			l := newLock(t, c, redistest.Key(t))
			assert.ErrorIs(t, l.Extend(ctx, 0), redislock.ErrNotHeld)
			_, err := l.TTL(ctx)
			assert.ErrorIs(t, err, redislock.ErrNotHeld)
			assert.ErrorIs(t, l.Release(ctx), redislock.ErrNotHeld)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("panic: %v", p)
				}
			}()
			tc.run(t)
		})
	}
}

// doneContext calls everything with a context that is already done, while
// the lock is free and while it is held.
func doneContext(t *testing.T, done context.Context, want error) {
	c := redistest.Client(t)
	ctx := context.Background()
	l := newLock(t, c, redistest.Key(t))

	err := l.Acquire(done)
	assert.ErrorIs(t, err, redislock.ErrNotAcquired)
	assert.ErrorIs(t, err, want)
	ok, err := l.TryAcquire(done)
	assert.False(t, ok)
	assert.ErrorIs(t, err, redislock.ErrNotAcquired)
	assert.ErrorIs(t, err, want)
	ran := false
	err = l.WithLock(done, func(context.Context) error { ran = true; return nil })
	assert.False(t, ran)
	assert.ErrorIs(t, err, want)
	assert.Zero(t, c.Exists(ctx, l.Key()).Val())
	notDropped(t, l, 0)

	require.NoError(t, l.Acquire(ctx))
	err = l.Acquire(done)
	assert.ErrorIs(t, err, want, "re-entry")
	notDropped(t, l, 1)
	assert.ErrorIs(t, l.Extend(done, 0), want)
	notDropped(t, l, 1)
	_, err = l.TTL(done)
	assert.ErrorIs(t, err, want)
	notDropped(t, l, 1)
	// Release is sent even with a done context, so defer Release is safe.
	require.NoError(t, l.Release(done))
	assert.Zero(t, c.Exists(ctx, l.Key()).Val())
}

// deadPort returns a loopback port that nothing listens on.
func deadPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// A count that Lua reads as a number but that is not a positive integer
// (nan, inf, beyond 2^53) is corrupt like one that is no number at all: the
// re-entry fails with ErrWrongType, the hold is kept, and its release frees
// the key.
func TestNumericCorruptCount(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	for _, count := range []string{"nan", "inf", "-inf", "0", "-3", "1.5", "9223372036854775808"} {
		l := newLock(t, c, redistest.Key(t))
		require.NoError(t, l.Acquire(ctx))
		require.NoError(t, c.HSet(ctx, l.Key(), "count", count).Err())
		err := l.Acquire(ctx)
		assert.ErrorIs(t, err, redislock.ErrWrongType, "count %q", count)
		assert.True(t, l.Held(), "count %q", count)
		assert.Equal(t, 1, l.Count(), "count %q", count)
		require.NoError(t, l.Release(ctx), "count %q", count)
		assert.Zero(t, c.Exists(ctx, l.Key()).Val(), "count %q: the key outlived the release", count)
	}
}

// WithLock with a nil function is bad input, not a panic.
func TestWithLockNilFunc(t *testing.T) {
	c := redistest.Client(t)
	l := newLock(t, c, redistest.Key(t))
	var err error
	assert.NotPanics(t, func() { err = l.WithLock(context.Background(), nil) })
	assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
	assert.False(t, l.Held())
}
