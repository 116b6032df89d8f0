package redislock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// The Python original polls every 50 ms and records nothing of its
// waiting, so Go Locks of one process that hand a name to each other let it
// in only every 17th release; WithoutHandOff, which the README asks for on
// the names Python services wait for, gives it its chance at every release:
// while three Go Locks of one process take turns (0.5 ms sections), it gets
// the lock in each of its waits of 1 s. Needs REDISLOCK_SEED_DIR when
// ../shared/seed is not beside the module root.
func TestWithoutHandOffPythonGetsAChance(t *testing.T) {
	pythonOriginal(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := redistest.Start(t)
	c := srv.Client(t)
	name := redistest.Key(t)
	py := startPyLock(t, srv, name, 10*time.Second)
	var wg sync.WaitGroup
	stop := time.Now().Add(12 * time.Second)
	for g := 0; g < 3; g++ {
		l := newLock(t, c, name, redislock.WithoutHandOff())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && time.Now().Before(stop) && ctx.Err() == nil; i++ {
				if err := l.Acquire(ctx); err != nil {
					return
				}
				time.Sleep(500 * time.Microsecond)
				_ = l.Release(context.Background())
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	held := 0
	start := time.Now()
	const tries = 5
	for i := 0; i < tries; i++ {
		if py.do("acquire 1") == "held" {
			held++
			py.do("release")
		}
	}
	t.Logf("the Python original held %d of %d times in %v", held, tries, time.Since(start))
	cancel()
	wg.Wait()
	assert.Equal(t, tries, held, "waits of 1 s in which the Python original got the lock")
}
