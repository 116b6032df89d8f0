// Command demo shows redislock at work: workers contending for one lock, a
// reentrant hold, a short lease kept alive by the heartbeat, and a holder
// told that its lock was taken away.
//
// It runs on an embedded Redis (miniredis) unless REDIS_ADDR names a server:
//
//	go run ./examples/demo
//	REDIS_ADDR=127.0.0.1:6379 go run ./examples/demo
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
)

func main() {
	client, stop, where := connect()
	defer stop()
	fmt.Println("redislock demo on", where)
	ctx := context.Background()
	prefix := fmt.Sprintf("demo:%d:", os.Getpid()) // keeps a shared server's keys apart

	steps := []struct {
		title string
		run   func(context.Context, *redis.Client, string) error
	}{
		{"1. Four workers contend for one lock", contend},
		{"2. A holder re-enters its own lock", reenter},
		{"3. A 300 ms lease outlives its TTL thanks to the heartbeat", heartbeat},
		{"4. The lock is taken away and its holder is told", stolen},
	}
	for _, s := range steps {
		fmt.Printf("\n%s\n", s.title)
		if err := s.run(ctx, client, prefix); err != nil {
			log.Fatalf("demo: %v", err)
		}
	}
}

// connect returns a client of REDIS_ADDR, or of an embedded Redis whose
// clock follows real time so that TTLs expire.
func connect() (*redis.Client, func(), string) {
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr})
		return c, func() { c.Close() }, "Redis at " + addr
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatalf("demo: start embedded Redis: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	// miniredis only expires keys when told time has passed: tell it.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	stop := func() {
		c.Close()
		close(done)
		wg.Wait()
		mr.Close()
	}
	return c, stop, "an embedded Redis (set REDIS_ADDR to use a real one)"
}

func contend(ctx context.Context, c *redis.Client, prefix string) error {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 1; w <= 4; w++ {
		lock, err := redislock.New(c, prefix+"report")
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- lock.WithLock(ctx, func(ctx context.Context) error {
				fmt.Printf("   %4d ms  worker %d holds the lock\n", time.Since(start).Milliseconds(), w)
				time.Sleep(50 * time.Millisecond)
				fmt.Printf("   %4d ms  worker %d releases it\n", time.Since(start).Milliseconds(), w)
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Println("   one holder at a time; each waiter took over after a release")
	return nil
}

func reenter(ctx context.Context, c *redis.Client, prefix string) error {
	lock, err := redislock.New(c, prefix+"account")
	if err != nil {
		return err
	}
	return lock.WithLock(ctx, func(ctx context.Context) error {
		fmt.Println("   outer section holds it, count", lock.Count())
		// A nested section that locks the same name re-enters through ctx,
		// even with another Lock value, instead of deadlocking.
		inner, err := redislock.New(c, prefix+"account")
		if err != nil {
			return err
		}
		return inner.WithLock(ctx, func(ctx context.Context) error {
			fmt.Println("   nested section re-entered, count", lock.Count())
			return nil
		})
	})
}

func heartbeat(ctx context.Context, c *redis.Client, prefix string) error {
	lock, err := redislock.New(c, prefix+"batch", redislock.WithTTL(300*time.Millisecond))
	if err != nil {
		return err
	}
	if err := lock.Acquire(ctx); err != nil {
		return err
	}
	defer lock.Release(ctx)
	for i := 1; i <= 4; i++ {
		time.Sleep(300 * time.Millisecond)
		ttl, err := lock.TTL(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("   after %4d ms: still held, %3d ms of lease left\n", i*300, ttl.Milliseconds())
	}
	return nil
}

func stolen(ctx context.Context, c *redis.Client, prefix string) error {
	lock, err := redislock.New(c, prefix+"leader",
		redislock.WithTTL(time.Second), redislock.WithHeartbeat(100*time.Millisecond))
	if err != nil {
		return err
	}
	err = lock.WithLock(ctx, func(ctx context.Context) error {
		fmt.Println("   leader holds the lock and works until told to stop")
		// An operator deletes the key by hand, as if the lease had been lost.
		c.Del(ctx, lock.Key())
		start := time.Now()
		<-ctx.Done()
		fmt.Printf("   leader told after %d ms: %v\n", time.Since(start).Milliseconds(), context.Cause(ctx))
		return ctx.Err()
	})
	if !errors.Is(err, redislock.ErrLockLost) {
		return fmt.Errorf("expected ErrLockLost, got %v", err)
	}
	fmt.Println("   WithLock returned an error matching ErrLockLost")
	return nil
}
