package redislock_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Checked: "waiters of other processes, which a release wakes, are
// not passed over" (mutex.go). One waiter on another client, against four
// goroutines of one client taking turns, gets about the share a fair race
// of heads would give it (one head per client: a third at least).
func TestHandOffLoneWaiterOfAnotherClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := redistest.Start(t)
	name := redistest.Key(t)
	busy, lone := srv.Client(t), srv.Client(t)
	var counts [2]atomic.Int64
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	work := func(c *redis.Client, i int) {
		defer wg.Done()
		l, err := redislock.New(c, name, redislock.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
		if err != nil {
			t.Error(err)
			return
		}
		for n := 0; n < 20000 && time.Now().Before(stop); n++ {
			if err := l.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(200 * time.Microsecond)
			counts[i].Add(1)
			if err := l.Release(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go work(busy, 0)
	}
	wg.Add(1)
	go work(lone, 1)
	wg.Wait()
	a, b := counts[0].Load(), counts[1].Load()
	t.Logf("busy client %d, lone waiter %d (%.0f%%)", a, b, 100*float64(b)/float64(a+b))
	assert.GreaterOrEqual(t, float64(b), 0.33*float64(a+b)*0.6, "the lone waiter's share")
}
