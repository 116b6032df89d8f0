package redislock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// events records what an Observer is told.
type events struct {
	mu sync.Mutex
	es []redislock.Event
}

func (r *events) Observe(e redislock.Event) {
	r.mu.Lock()
	r.es = append(r.es, e)
	r.mu.Unlock()
}

func (r *events) of(kind redislock.EventKind) []redislock.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []redislock.Event
	for _, e := range r.es {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// Checked: the heir of a hand-off is a holder like any other: its
// Acquire is observed as a fresh acquisition, the releaser's Release as a
// last release; Count, Held and Token are the new hold's, with a token
// above the releaser's; the heartbeat renews the hold past the heir's TTL
// and from the right start (the heir's lease is not longer than its TTL
// from the release's start); and the heir is told of the loss when the key
// is deleted.
func TestHandOffHeirIsAHolder(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)
	name := redistest.Key(t)
	var relObs, heirObs events
	holder := newLock(t, c, name, redislock.WithObserver(&relObs))
	heir := newLock(t, c, name, redislock.WithObserver(&heirObs), redislock.WithTTL(600*time.Millisecond),
		redislock.WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	first := holder.Token()
	got := make(chan error, 1)
	go func() { got <- heir.Acquire(ctx) }()
	redislock.WaitQueued(t, holder, 1)
	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, <-got)
	assert.True(t, c.HExists(ctx, heir.Key(), "from").Val(), "handed over")

	assert.True(t, heir.Held())
	assert.Equal(t, 1, heir.Count())
	assert.Greater(t, heir.Token(), first)
	if rel := relObs.of(redislock.EventRelease); assert.Len(t, rel, 1) {
		assert.True(t, rel[0].Last)
		assert.NoError(t, rel[0].Err)
	}
	if acq := heirObs.of(redislock.EventAcquire); assert.Len(t, acq, 1) {
		assert.Equal(t, redislock.OutcomeAcquired, acq[0].Outcome)
		assert.True(t, acq[0].Fresh, "the heir's hold is new")
	}
	pttl := c.PTTL(ctx, heir.Key()).Val()
	assert.LessOrEqual(t, pttl, 600*time.Millisecond-time.Since(released)+5*time.Millisecond)

	// Renewed past its TTL.
	time.Sleep(1500 * time.Millisecond)
	require.True(t, heir.Held())
	assert.Equal(t, heir.Owner(), c.HGet(ctx, heir.Key(), "owner").Val())
	assert.Positive(t, len(heirObs.of(redislock.EventRenewal)), "renewals observed")

	// Told of the loss when the key goes.
	lost := heir.Lost()
	require.NoError(t, c.Del(ctx, heir.Key()).Err())
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the heir was not told that its key is gone")
	}
	assert.False(t, heir.Held())
	eventually(t, time.Second, func() bool { return len(heirObs.of(redislock.EventLoss)) == 1 }, "one loss observed")
	err := heir.Release(ctx)
	assert.True(t, errors.Is(err, redislock.ErrNotHeld), "release after the loss: %v", err)
}
