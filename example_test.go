package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
)

// exampleRedis starts an in-process Redis for the examples, so they run
// without setup. Real code passes its own client.
func exampleRedis() (*redis.Client, func()) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		panic(err)
	}
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return client, func() { client.Close(); mr.Close() }
}

func Example() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	lock, err := redislock.New(client, "order:42")
	if err != nil {
		panic(err)
	}
	if err := lock.Acquire(ctx); err != nil {
		panic(err)
	}
	defer lock.Release(ctx)

	fmt.Println("held:", lock.Held(), "key:", lock.Key())
	// Output: held: true key: lock:order:42
}

func ExampleLock_WithLock() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	lock, err := redislock.New(client, "nightly-report")
	if err != nil {
		panic(err)
	}
	err = lock.WithLock(ctx, func(ctx context.Context) error {
		// ctx is cancelled, with cause ErrLockLost, if the lock is lost.
		fmt.Println("generating the report")
		return nil
	})
	fmt.Println("err:", err, "held after:", lock.Held())
	// Output:
	// generating the report
	// err: <nil> held after: false
}

func ExampleLock_TryAcquire() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	a, _ := redislock.New(client, "batch")
	b, _ := redislock.New(client, "batch")
	ok, _ := a.TryAcquire(ctx)
	fmt.Println("a acquired:", ok)
	ok, _ = b.TryAcquire(ctx)
	fmt.Println("b acquired:", ok)
	a.Release(ctx)
	ok, _ = b.TryAcquire(ctx)
	fmt.Println("b acquired after a released:", ok)
	b.Release(ctx)
	// Output:
	// a acquired: true
	// b acquired: false
	// b acquired after a released: true
}

func ExampleLock_Acquire_reentrant() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	lock, _ := redislock.New(client, "account:7")
	lock.Acquire(ctx)
	lock.Acquire(ctx) // the same owner re-enters
	fmt.Println("count:", lock.Count())
	lock.Release(ctx)
	fmt.Println("held after one release:", lock.Held())
	lock.Release(ctx)
	err := lock.Release(ctx) // one release too many
	fmt.Println(errors.Is(err, redislock.ErrNotHeld))
	// Output:
	// count: 2
	// held after one release: true
	// true
}

func ExampleLock_Acquire_timeout() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	holder, _ := redislock.New(client, "migration")
	holder.Acquire(ctx)
	defer holder.Release(ctx)

	waiter, _ := redislock.New(client, "migration", redislock.WithWaitTimeout(20*time.Millisecond))
	err := waiter.Acquire(ctx)
	fmt.Println(errors.Is(err, redislock.ErrNotAcquired), errors.Is(err, context.DeadlineExceeded))
	// Output: true true
}

func ExampleLock_Lost() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	lock, _ := redislock.New(client, "leader", redislock.WithTTL(time.Second), redislock.WithHeartbeat(10*time.Millisecond))
	err := lock.WithLock(ctx, func(ctx context.Context) error {
		client.Del(ctx, lock.Key()) // someone removes the lock behind our back
		<-ctx.Done()                // the next heartbeat notices
		fmt.Println("stopped:", context.Cause(ctx))
		return nil
	})
	fmt.Println(errors.Is(err, redislock.ErrLockLost))
	// Output:
	// stopped: redislock: lock lost: the key is gone or held by another owner
	// true
}
