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
		// ctx is cancelled if the lock is lost; then
		// errors.Is(context.Cause(ctx), redislock.ErrLockLost).
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

func ExampleNewSemaphore() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	// At most two workers call the partner API at once.
	a, _ := redislock.NewSemaphore(client, "partner-api", 2)
	b, _ := redislock.NewSemaphore(client, "partner-api", 2)
	c, _ := redislock.NewSemaphore(client, "partner-api", 2)
	_ = a.Acquire(ctx)
	_ = b.Acquire(ctx)
	ok, _ := c.TryAcquire(ctx)
	fmt.Println("third worker got a permit:", ok)
	n, _ := redislock.SemaphoreHolders(ctx, client, "partner-api")
	fmt.Println("permits held:", n)

	_, err := redislock.NewSemaphore(client, "partner-api", 5)
	if err == nil {
		other, _ := redislock.NewSemaphore(client, "partner-api", 5)
		_, err = other.TryAcquire(ctx)
	}
	fmt.Println("another limit:", errors.Is(err, redislock.ErrLimitMismatch))

	_ = a.Release(ctx)
	ok, _ = c.TryAcquire(ctx)
	fmt.Println("after a release:", ok)
	_ = b.Release(ctx)
	_ = c.Release(ctx)
	// Output:
	// third worker got a permit: false
	// permits held: 2
	// another limit: true
	// after a release: true
}

func ExampleNewRWLock() {
	client, stop := exampleRedis()
	defer stop()
	ctx := context.Background()

	// Many readers of the cached report, one rebuilder.
	reader1, _ := redislock.NewRWLock(client, "report")
	reader2, _ := redislock.NewRWLock(client, "report")
	rebuilder, _ := redislock.NewRWLock(client, "report")

	_ = reader1.Reader().Acquire(ctx)
	ok, _ := reader2.Reader().TryAcquire(ctx)
	fmt.Println("second reader:", ok)
	ok, _ = rebuilder.Writer().TryAcquire(ctx)
	fmt.Println("writer while reading:", ok)
	_ = reader1.Reader().Release(ctx)
	_ = reader2.Reader().Release(ctx)

	err := rebuilder.Writer().WithLock(ctx, func(ctx context.Context) error {
		fmt.Println("rebuilding alone")
		return nil
	})
	fmt.Println("err:", err)

	// A reader asking for the write lock would wait for itself.
	_ = reader1.Reader().Acquire(ctx)
	err = reader1.Writer().Acquire(ctx)
	fmt.Println("upgrade:", errors.Is(err, redislock.ErrWouldDeadlock))
	_ = reader1.Reader().Release(ctx)
	// Output:
	// second reader: true
	// writer while reading: false
	// rebuilding alone
	// err: <nil>
	// upgrade: true
}
