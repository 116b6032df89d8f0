package redislock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock/internal/redistest"
)

// Regression: "at most maxHandoffs times in a row ... so that waiters
// that record nothing (the Python original) get a chance" (mutex.go). While
// three Go Locks of one process take turns on a name (0.5 ms sections), the
// Python original, which polls every 50 ms, gets the lock in each of its
// waits of 1 s before the change; with hand-offs the lock is free for it
// only after every 17th release, and most of its waits end without it. Needs REDISLOCK_SEED_DIR when ../shared/seed is not beside the
// module root.
func TestHandOffPythonGetsAChance(t *testing.T) {
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
		l := newLock(t, c, name)
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
