package redislock_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// Checked: with connections dropped under them, hand-offs keep one
// holder at a time, and a key left behind belongs to a Lock whose last
// Release reported an error (as a failed release may leave it), never to a
// Lock whose Acquire failed or whose Release succeeded.
func TestHandOffChurnWithDroppedConnections(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	check := srv.Client(t)
	name := redistest.Key(t)
	probe := newLock(t, check, name)
	e := &exclusion{c: check, key: probe.Key()}
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	lastRelErr := make(map[string]error) // by owner
	locks := make(map[string]*redislock.Lock)
	for ci := 0; ci < 2; ci++ {
		proxy, c := proxied(t, srv, func(o *redis.Options) {
			o.MaxRetries = 2
			o.ReadTimeout = 200 * time.Millisecond
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				time.Sleep(150 * time.Millisecond)
				proxy.DropConnections()
			}
		}()
		for g := 0; g < 3; g++ {
			l := newLock(t, c, name, redislock.WithTTL(time.Second),
				redislock.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
			mu.Lock()
			locks[l.Owner()] = l
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 3000 && time.Now().Before(stop); i++ {
					actx, cancel := context.WithTimeout(ctx, time.Duration(2+i%20)*time.Millisecond)
					err := l.Acquire(actx)
					cancel()
					if err != nil {
						if l.Held() {
							e.problem("Acquire of %s failed (%v), yet it holds the lock", l.Owner(), err)
						}
						continue
					}
					e.enter(ctx, l.Owner(), l.Token())
					e.exit(l.Owner())
					relErr := l.Release(ctx)
					mu.Lock()
					lastRelErr[l.Owner()] = relErr
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("sections: %d", e.entries)
	for _, p := range e.problems {
		t.Error(p)
	}
	owner := check.HGet(ctx, probe.Key(), "owner").Val()
	if owner != "" {
		pttl := check.PTTL(ctx, probe.Key()).Val()
		mu.Lock()
		relErr, released := lastRelErr[owner]
		mu.Unlock()
		t.Logf("key left: owner %s, pttl %v, its last release: %v (released: %v)", owner, pttl, relErr, released)
		assert.True(t, released && relErr != nil, "the key left belongs to a Lock whose last Release did not fail")
		if l := locks[owner]; l != nil {
			assert.False(t, l.Held())
		}
	}
}
