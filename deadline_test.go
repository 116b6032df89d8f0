package redislock

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The shared deadline queue ends each hold at its own deadline, in
// deadline order, leaves a released hold alone and follows a deadline that
// moved later.
func TestDeadlinesFireInOrder(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	start := time.Now()
	held := func(after time.Duration) *hold {
		l, err := New(c, "x", WithoutHeartbeat())
		require.NoError(t, err)
		h := &hold{lock: l, count: 1, token: 1, deadline: start.Add(after), index: -1}
		h.tokenArg = &h.token
		h.lostChan() // made before the loss, so that closing it is seen
		l.mu.Lock()
		l.hold = h
		l.armDeadlineLocked(h.deadline)
		l.mu.Unlock()
		return h
	}
	late, early, released, moved := held(90*time.Millisecond), held(30*time.Millisecond), held(60*time.Millisecond), held(30*time.Millisecond)
	released.lock.mu.Lock()
	released.lock.endLocked(released, nil)
	released.lock.mu.Unlock()
	moved.lock.mu.Lock()
	moved.lock.extendDeadlineLocked(moved, start, 150*time.Millisecond+moved.lock.opts.margin(150*time.Millisecond))
	movedTo := moved.deadline.Sub(start) // about 150 ms: validity truncates to whole milliseconds
	moved.lock.mu.Unlock()
	require.Greater(t, movedTo, 140*time.Millisecond)

	lostAt := func(h *hold) time.Duration {
		select {
		case <-h.lost:
			return time.Since(start)
		case <-time.After(2 * time.Second):
			t.Fatalf("hold due at %v never lost", h.deadline.Sub(start))
			return 0
		}
	}
	e, l, m := lostAt(early), lostAt(late), lostAt(moved)
	assert.GreaterOrEqual(t, e, 30*time.Millisecond)
	assert.GreaterOrEqual(t, l, 90*time.Millisecond)
	assert.GreaterOrEqual(t, m, movedTo, "lost at its moved deadline, not the first")
	assert.ErrorIs(t, early.cause, ErrLockLost)
	assert.Nil(t, released.cause, "a released hold is not lost")
	assert.Zero(t, released.dlIndex, "a released hold leaves the queue")
}
