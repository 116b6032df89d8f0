package redislockotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

// Acquisitions of every outcome, a wait behind another holder, renewals and
// releases, as the metrics show them.
func TestMetricsOfAcquisitions(t *testing.T) {
	c := startRedis(t).client(t)
	f := newFixture(t)
	ctx := context.Background()
	a := f.lock(c, "", redislock.WithTTL(300*time.Millisecond), redislock.WithHeartbeat(50*time.Millisecond))
	b := f.lock(c, "", redislock.WithWaitTimeout(100*time.Millisecond))

	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx); err != nil { // re-entry
		t.Fatal(err)
	}
	if got := f.sum("redislock.holds", mutex); got != 1 {
		t.Errorf("holds after an acquire and a re-entry = %d, want 1", got)
	}
	if ok, err := b.TryAcquire(ctx); ok || err != nil {
		t.Fatalf("TryAcquire of a held lock = %v, %v; want false, nil", ok, err)
	}
	if err := b.Acquire(ctx); !errors.Is(err, redislock.ErrNotAcquired) {
		t.Fatalf("Acquire of a held lock = %v, want ErrNotAcquired", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Acquire(cctx); err == nil {
		t.Fatal("Acquire with a cancelled context succeeded")
	}

	// A waiter that gets the lock when a releases it, 200 ms later.
	w := f.lock(c, "", redislock.WithWaitTimeout(5*time.Second))
	got := make(chan error, 1)
	go func() { got <- w.Acquire(ctx) }()
	time.Sleep(200 * time.Millisecond) // a holds the lock this long, renewed meanwhile
	for range 2 {
		if err := a.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := w.Release(ctx); err != nil {
		t.Fatal(err)
	}

	fresh := attribute.Bool("fresh", true)
	for _, tc := range []struct {
		attrs []attribute.KeyValue
		want  uint64
	}{
		{[]attribute.KeyValue{mutex, acquired, fresh}, 2}, // a's, then w's
		{[]attribute.KeyValue{mutex, acquired, attribute.Bool("fresh", false)}, 1},
		{[]attribute.KeyValue{mutex, attribute.String("outcome", "busy")}, 1},
		{[]attribute.KeyValue{mutex, attribute.String("outcome", "timed_out")}, 1},
		{[]attribute.KeyValue{mutex, attribute.String("outcome", "cancelled")}, 1},
		{[]attribute.KeyValue{attribute.String("outcome", "error")}, 0},
	} {
		if n, _ := f.hist("redislock.acquire.wait", tc.attrs...); n != tc.want {
			t.Errorf("acquire.wait count with %v = %d, want %d", tc.attrs, n, tc.want)
		}
	}
	if _, s := f.hist("redislock.acquire.wait", attribute.String("outcome", "timed_out")); s < 0.1 {
		t.Errorf("timed-out wait = %.3fs, want at least the 100ms wait timeout", s)
	}
	if _, s := f.hist("redislock.acquire.wait", acquired, fresh); s < 0.1 {
		t.Errorf("fresh acquired waits add up to %.3fs, want at least 0.1s (w waited 200ms)", s)
	}
	n, s := f.hist("redislock.hold.duration", mutex)
	if n != 2 || s < 0.2 {
		t.Errorf("hold.duration: %d holds, %.3fs in all; want 2 holds, a's at least 0.2s", n, s)
	}
	if got := f.sum("redislock.holds", mutex); got != 0 {
		t.Errorf("holds after the releases = %d, want 0", got)
	}
	if got := f.sum("redislock.renewals", mutex); got < 1 {
		t.Errorf("renewals = %d, want at least 1 in 200ms at a 50ms heartbeat", got)
	}
	if got := f.sum("redislock.renewal.failures", mutex); got != 0 {
		t.Errorf("renewal failures = %d, want 0", got)
	}
	if got := f.sum("redislock.losses"); got != 0 {
		t.Errorf("losses = %d, want 0", got)
	}
	m, _ := f.metric("redislock.acquire.wait")
	if m.Unit != "s" {
		t.Errorf("acquire.wait unit = %q, want s", m.Unit)
	}
}

// Each way of losing a hold counts one loss with its cause and takes the
// hold off the gauge once, also when a Release later reports the loss.
func TestLossesCountOnceByCause(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	check := func(t *testing.T, f *fixture, l *redislock.Lock, cause string, heldRecorded uint64) {
		t.Helper()
		if err := l.Release(ctx); !errors.Is(err, redislock.ErrLockLost) {
			t.Errorf("Release of the lost hold = %v, want ErrLockLost", err)
		}
		if got := f.sum("redislock.losses", mutex, attribute.String("cause", cause)); got != 1 {
			t.Errorf("losses with cause %s = %d, want 1", cause, got)
		}
		if got := f.sum("redislock.losses"); got != 1 {
			t.Errorf("losses = %d, want 1", got)
		}
		if got := f.sum("redislock.holds"); got != 0 {
			t.Errorf("holds after the loss and its Release = %d, want 0", got)
		}
		if n, _ := f.hist("redislock.hold.duration"); n != heldRecorded {
			t.Errorf("hold.duration count = %d, want %d", n, heldRecorded)
		}
	}

	t.Run("taken", func(t *testing.T) { // the heartbeat finds the key gone
		f := newFixture(t)
		l := f.lock(c, "", redislock.WithTTL(time.Second), redislock.WithHeartbeat(50*time.Millisecond))
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, l.Key()).Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Second, func() bool { return f.sum("redislock.losses") == 1 }, "loss counted")
		check(t, f, l, redislockotel.CauseTaken, 0)
	})

	t.Run("released_lost", func(t *testing.T) { // the last release finds it gone
		f := newFixture(t)
		l := f.lock(c, "", redislock.WithTTL(20*time.Second))
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Del(ctx, l.Key()).Err(); err != nil {
			t.Fatal(err)
		}
		check(t, f, l, redislockotel.CauseReleasedLost, 1)
	})

	t.Run("taken at a release of a re-entered level", func(t *testing.T) {
		f := newFixture(t)
		l := f.lock(c, "", redislock.WithTTL(20*time.Second))
		for range 2 {
			if err := l.Acquire(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Del(ctx, l.Key()).Err(); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); !errors.Is(err, redislock.ErrLockLost) {
			t.Fatalf("Release of the first level = %v, want ErrLockLost", err)
		}
		check(t, f, l, redislockotel.CauseTaken, 0)
	})

	t.Run("expired", func(t *testing.T) { // no renewal gets through
		f := newFixture(t)
		// Short timeouts, so that renewals sent to the stopped server fail
		// (and are counted) before the lease runs out.
		fast := redis.NewClient(&redis.Options{Addr: srv.addr, ReadTimeout: 50 * time.Millisecond,
			WriteTimeout: 50 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { fast.Close() })
		l := f.lock(fast, "", redislock.WithTTL(400*time.Millisecond), redislock.WithHeartbeat(100*time.Millisecond))
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		resume := srv.pause(t)
		select {
		case <-l.Lost():
		case <-time.After(3 * time.Second):
			resume()
			t.Fatal("hold not lost within 3s of the server stopping")
		}
		resume()
		eventually(t, 2*time.Second, func() bool { return f.sum("redislock.losses") == 1 }, "loss counted")
		check(t, f, l, redislockotel.CauseExpired, 0)
		if got := f.sum("redislock.renewal.failures"); got < 1 {
			t.Errorf("renewal failures = %d, want at least 1", got)
		}
	})
}

// Acquire spans are children of the caller's span, start when the call did
// and mark failures.
func TestAcquireSpans(t *testing.T) {
	c := startRedis(t).client(t)
	f := newFixture(t)
	a := f.lock(c, "")
	b := f.lock(c, "", redislock.WithWaitTimeout(100*time.Millisecond))
	ctx, parent := f.tp.Tracer("test").Start(context.Background(), "request")
	before := time.Now()
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx); !errors.Is(err, redislock.ErrNotAcquired) {
		t.Fatalf("Acquire of a held lock = %v, want ErrNotAcquired", err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans := f.ended("redislock.acquire")
	if len(spans) != 2 {
		t.Fatalf("%d acquire spans, want 2", len(spans))
	}
	for _, s := range spans {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("acquire span's parent = %v, want the caller's span %v", s.Parent().SpanID(), parent.SpanContext().SpanID())
		}
		if s.StartTime().Before(before) {
			t.Errorf("acquire span starts %v before the call", before.Sub(s.StartTime()))
		}
		if v, _ := spanAttr(s, "redislock.name"); v.AsString() != a.Name() {
			t.Errorf("redislock.name = %q, want %q", v.AsString(), a.Name())
		}
	}
	ok, failed := spans[0], spans[1]
	if v, _ := spanAttr(ok, "redislock.outcome"); v.AsString() != "acquired" || ok.Status().Code != codes.Unset {
		t.Errorf("first acquire: outcome %q, status %v; want acquired, unset", v.AsString(), ok.Status().Code)
	}
	if v, _ := spanAttr(failed, "redislock.outcome"); v.AsString() != "timed_out" || failed.Status().Code != codes.Error {
		t.Errorf("second acquire: outcome %q, status %v; want timed_out, error", v.AsString(), failed.Status().Code)
	}
	if d := failed.EndTime().Sub(failed.StartTime()); d < 100*time.Millisecond {
		t.Errorf("timed-out acquire span lasts %v, want at least the 100ms wait", d)
	}
}

// WithNameAttribute puts the lock's name on metrics.
func TestNameAttribute(t *testing.T) {
	c := startRedis(t).client(t)
	ctx := context.Background()
	for _, tc := range []struct {
		opts []redislockotel.Option
		want uint64
	}{{nil, 0}, {[]redislockotel.Option{redislockotel.WithNameAttribute()}, 1}} {
		f := newFixture(t, tc.opts...)
		l := f.lock(c, "")
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if n, _ := f.hist("redislock.acquire.wait", attribute.String("redislock.name", l.Name())); n != tc.want {
			t.Errorf("with %d options: acquire.wait points named %q = %d, want %d", len(tc.opts), l.Name(), n, tc.want)
		}
	}
}

func TestLossCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, redislockotel.CauseOther},
		{errors.New("the key is gone or held by another owner"), redislockotel.CauseOther}, // not an ErrLockLost
		{errors.Join(redislock.ErrLockLost, errors.New("something new")), redislockotel.CauseOther},
	} {
		if got := redislockotel.LossCause(tc.err); got != tc.want {
			t.Errorf("LossCause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
