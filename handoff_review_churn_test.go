package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// exclusion checks critical sections of one lock name: one holder (a
// Lock's owner) at a time, the key owned by it on the server meanwhile, and
// fencing tokens that grow with every new hold.
type exclusion struct {
	c redis.UniversalClient // nil: do not look at the key

	key       string
	mu        sync.Mutex
	owner     string // inside now, "" if nobody
	depth     int
	lastOwner string
	lastToken int64
	entries   int
	problems  []string
}

func (e *exclusion) problem(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.problems) < 20 {
		e.problems = append(e.problems, fmt.Sprintf(format, args...))
	}
}

// enter starts a section of owner, whose hold has this token.
func (e *exclusion) enter(ctx context.Context, owner string, token int64) {
	e.mu.Lock()
	if e.owner != "" && e.owner != owner {
		e.problems = append(e.problems, fmt.Sprintf("two holders at once: %s inside, %s entered", e.owner, owner))
	}
	if e.depth == 0 && token <= e.lastToken && (token != e.lastToken || owner != e.lastOwner) {
		e.problems = append(e.problems, fmt.Sprintf("token %d of %s after %d of %s", token, owner, e.lastToken, e.lastOwner))
	}
	e.owner = owner
	e.depth++
	e.entries++
	e.lastOwner, e.lastToken = owner, max(e.lastToken, token)
	e.mu.Unlock()
	if e.c == nil {
		// Not a mutex hash.
	} else if got, err := e.c.HGet(ctx, e.key, "owner").Result(); err != nil || got != owner {
		e.problem("inside %s, the key's owner is %q (%v)", owner, got, err)
	}
	time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
}

func (e *exclusion) exit(owner string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.owner != owner {
		e.problems = append(e.problems, fmt.Sprintf("%s left while %s was inside", owner, e.owner))
	}
	e.depth--
	if e.depth == 0 {
		e.owner = ""
	}
}

// failedAcquire checks the error of an Acquire that may time out.
func failedAcquire(e *exclusion, l *redislock.Lock, err error, shared bool) {
	if !errors.Is(err, redislock.ErrNotAcquired) {
		e.problem("acquire: %v", err)
		return
	}
	if !shared && l.Held() {
		e.problem("Acquire of %s failed (%v), yet it holds the lock", l.Owner(), err)
	}
}

// Checked: hand-offs never make two holders at once, never leave a
// hold nobody knows of, and keep fencing tokens growing, under churn: two
// clients, several Locks per client, waiters with short deadlines and wait
// timeouts, a Lock shared by goroutines, borrowed levels released after
// the lender's, and TryAcquire callers.
func TestHandOffChurn(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	clients := []*redis.Client{srv.Client(t), srv.Client(t)}
	var handoffs atomic.Int64
	for _, c := range clients {
		c.AddHook(eventHook{fn: func(cmd redis.Cmder) {
			if isHandOff(cmd) {
				handoffs.Add(1)
			}
		}})
	}
	name := redistest.Key(t)
	check := srv.Client(t)
	probe := newLock(t, check, name)
	e := &exclusion{c: check, key: probe.Key()}
	stop := time.Now().Add(3 * time.Second)
	const maxIter = 3000
	var wg sync.WaitGroup
	var locks []*redislock.Lock
	var locksMu sync.Mutex
	mk := func(c *redis.Client, opts ...redislock.Option) *redislock.Lock {
		opts = append([]redislock.Option{redislock.WithTTL(2 * time.Second),
			redislock.WithRetryBackoff(time.Millisecond, 30*time.Millisecond)}, opts...)
		l := newLock(t, c, name, opts...)
		locksMu.Lock()
		locks = append(locks, l)
		locksMu.Unlock()
		return l
	}
	run := func(fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxIter && time.Now().Before(stop); i++ {
				fn(i)
			}
		}()
	}
	for ci, c := range clients {
		// Plain waiters, some with short deadlines.
		for g := 0; g < 3; g++ {
			l := mk(c)
			run(func(i int) {
				actx, cancel := ctx, context.CancelFunc(func() {})
				if i%3 == g%3 {
					actx, cancel = context.WithTimeout(ctx, time.Duration(1+rand.IntN(5))*time.Millisecond)
				}
				err := l.Acquire(actx)
				cancel()
				if err != nil {
					failedAcquire(e, l, err, false)
					return
				}
				e.enter(ctx, l.Owner(), l.Token())
				e.exit(l.Owner())
				if err := l.Release(ctx); err != nil {
					e.problem("release: %v", err)
				}
			})
		}
		// Waiters with a wait timeout that ends around a hand-off.
		for g := 0; g < 2; g++ {
			l := mk(c, redislock.WithWaitTimeout(time.Duration(1+g)*time.Millisecond))
			run(func(int) {
				if err := l.Acquire(ctx); err != nil {
					failedAcquire(e, l, err, false)
					return
				}
				e.enter(ctx, l.Owner(), l.Token())
				e.exit(l.Owner())
				if err := l.Release(ctx); err != nil {
					e.problem("release: %v", err)
				}
			})
		}
		// One Lock shared by two goroutines.
		shared := mk(c)
		for g := 0; g < 2; g++ {
			run(func(int) {
				if err := shared.Acquire(ctx); err != nil {
					failedAcquire(e, shared, err, true)
					return
				}
				e.enter(ctx, shared.Owner(), shared.Token())
				e.exit(shared.Owner())
				if err := shared.Release(ctx); err != nil {
					e.problem("release of the shared Lock: %v", err)
				}
			})
		}
		// A borrowed level released after the lender's.
		lender, borrower := mk(c), mk(c)
		run(func(int) {
			var borrowed bool
			err := lender.WithLock(ctx, func(fctx context.Context) error {
				e.enter(ctx, lender.Owner(), lender.Token())
				if err := borrower.Acquire(fctx); err != nil {
					e.problem("borrow: %v", err)
					return nil
				}
				borrowed = true
				return nil
			})
			if err != nil {
				e.problem("WithLock: %v", err)
			}
			if borrowed {
				e.exit(lender.Owner())
				if err := borrower.Release(ctx); err != nil {
					e.problem("release of the borrowed level: %v", err)
				}
			} else if err == nil {
				e.exit(lender.Owner())
			}
		})
		if ci == 1 {
			try := mk(c)
			run(func(int) {
				ok, err := try.TryAcquire(ctx)
				if err != nil {
					e.problem("TryAcquire: %v", err)
					return
				}
				if ok {
					e.enter(ctx, try.Owner(), try.Token())
					e.exit(try.Owner())
					if err := try.Release(ctx); err != nil {
						e.problem("release: %v", err)
					}
				}
				time.Sleep(time.Millisecond)
			})
		}
	}
	wg.Wait()
	t.Logf("sections: %d, hand-offs sent: %d", e.entries, handoffs.Load())
	for _, p := range e.problems {
		t.Error(p)
	}
	for _, l := range locks {
		assert.False(t, l.Held(), "%s still holds after all released", l.Owner())
	}
	owner := check.HGet(ctx, probe.Key(), "owner").Val()
	assert.Zero(t, check.Exists(ctx, probe.Key()).Val(), "the key outlived every hold, owned by %q", owner)
	require.Positive(t, e.entries)
}

// isHandOff reports whether cmd is a hand-off: the only EVALSHA with three
// keys and six arguments.
func isHandOff(cmd redis.Cmder) bool {
	args := cmd.Args()
	// A mutex's: three keys (the lock, the latch, the fence) and eight
	// arguments.
	return len(args) == 14 && strings.EqualFold(cmd.Name(), "evalsha") && fmt.Sprint(args[2]) == "3"
}
