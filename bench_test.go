package redislock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// BenchmarkAcquireRelease is one uncontended acquire and release with the
// heartbeat on: two round trips.
func BenchmarkAcquireRelease(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	l, err := redislock.New(c, redistest.Key(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawSetNXDel is the floor: SET NX PX and DEL, also two round trips
// but with no owner check, reentrancy or heartbeat.
func BenchmarkRawSetNXDel(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	key := redistest.Key(b)
	b.ReportAllocs()
	for b.Loop() {
		ok, err := c.SetNX(ctx, key, "owner", redislock.DefaultTTL).Result()
		if err != nil || !ok {
			b.Fatal("SET NX failed:", ok, err)
		}
		if err := c.Del(ctx, key).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReentrantAcquireRelease is a nested level on a held lock.
func BenchmarkReentrantAcquireRelease(b *testing.B) {
	c := redistest.Client(b)
	ctx := context.Background()
	l, err := redislock.New(c, redistest.Key(b), redislock.WithTTL(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		b.Fatal(err)
	}
	defer l.Release(ctx)
	b.ReportAllocs()
	for b.Loop() {
		if err := l.Acquire(ctx); err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
