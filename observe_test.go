package redislock_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []redislock.Event
}

func (r *recorder) Observe(e redislock.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) of(kind redislock.EventKind) []redislock.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []redislock.Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func TestObserverSeesAcquireReleaseRenewalAndLoss(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	rec := &recorder{}
	obs := redislock.WithObserver(rec)
	l := newLock(t, c, name, obs, redislock.WithTTL(300*time.Millisecond), redislock.WithHeartbeat(50*time.Millisecond))
	other := newLock(t, c, name, obs, redislock.WithWaitTimeout(50*time.Millisecond))

	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Acquire(ctx)) // re-entry
	ok, err := other.TryAcquire(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	assert.ErrorIs(t, other.Acquire(ctx), redislock.ErrNotAcquired) // times out
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	assert.Error(t, other.Acquire(cctx))
	time.Sleep(200 * time.Millisecond) // renewals
	require.NoError(t, l.Release(ctx))
	require.NoError(t, l.Release(ctx))

	acq := rec.of(redislock.EventAcquire)
	require.Len(t, acq, 5)
	want := []redislock.Outcome{redislock.OutcomeAcquired, redislock.OutcomeAcquired, redislock.OutcomeBusy, redislock.OutcomeTimedOut, redislock.OutcomeCancelled}
	for i, e := range acq {
		assert.Equal(t, want[i], e.Outcome, "acquire %d", i)
		assert.Equal(t, name, e.Name)
		assert.Equal(t, "mutex", e.Primitive)
	}
	assert.True(t, acq[0].Fresh)
	assert.False(t, acq[1].Fresh, "a re-entry is not fresh")
	assert.GreaterOrEqual(t, acq[3].Wait, 50*time.Millisecond, "the timed-out wait is measured")

	rel := rec.of(redislock.EventRelease)
	require.Len(t, rel, 2)
	assert.False(t, rel[0].Last)
	assert.True(t, rel[1].Last)
	assert.GreaterOrEqual(t, rel[1].Held, 200*time.Millisecond)
	ren := rec.of(redislock.EventRenewal)
	require.NotEmpty(t, ren, "renewal rounds are reported")
	assert.Equal(t, 1, ren[0].Holds)
	assert.Zero(t, ren[0].Failures)
	assert.Empty(t, rec.of(redislock.EventLoss))

	// A loss.
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, c.Del(ctx, l.Key()).Err())
	closedWithin(t, l.Lost(), time.Second)
	eventually(t, time.Second, func() bool { return len(rec.of(redislock.EventLoss)) == 1 }, "loss reported")
	loss := rec.of(redislock.EventLoss)[0]
	assert.ErrorIs(t, loss.Err, redislock.ErrLockLost)
	_ = l.Release(ctx)
	assert.Len(t, rec.of(redislock.EventLoss), 1, "a loss is reported once")
}

func TestObserverSeesErrors(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	rec := &recorder{}
	l := newLock(t, c, redistest.Key(t), redislock.WithObserver(redislock.ObserverFunc(rec.Observe)))
	require.NoError(t, c.Set(ctx, l.Key(), "x", time.Minute).Err())
	err := l.Acquire(ctx)
	require.ErrorIs(t, err, redislock.ErrWrongType)
	acq := rec.of(redislock.EventAcquire)
	require.Len(t, acq, 1)
	assert.Equal(t, redislock.OutcomeError, acq[0].Outcome)
	assert.True(t, errors.Is(acq[0].Err, redislock.ErrWrongType))
	assert.Equal(t, "error", acq[0].Outcome.String())
}

// The logger hears of a renewal that failed while the hold lives on, and of
// the loss; nothing of operations that succeed.
func TestLoggerWarnsOfFailedRenewalsAndLoss(t *testing.T) {
	srv := redistest.Start(t)
	proxy, pc := proxied(t, srv)
	ctx := context.Background()
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&buf, &mu}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := newLock(t, pc, "logged", redislock.WithLogger(logger), redislock.WithTTL(time.Second), redislock.WithHeartbeat(100*time.Millisecond))
	require.NoError(t, l.Acquire(ctx))
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	assert.Empty(t, buf.String(), "nothing logged while all goes well")
	mu.Unlock()
	proxy.Blackhole()
	closedWithin(t, l.Lost(), 3*time.Second)
	proxy.Heal()
	eventually(t, time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(buf.String(), "lock lost")
	}, "loss logged")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	assert.Contains(t, out, "level=WARN msg=\"redislock: renewal failed")
	assert.Contains(t, out, "level=ERROR msg=\"redislock: lock lost\"")
	assert.Contains(t, out, "key=lock:logged")
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
