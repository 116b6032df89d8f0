package redislockotel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

func TestWithLockSpan(t *testing.T) {
	c := startRedis(t).client(t)
	f := newFixture(t)
	tp := redislockotel.WithTracerProvider(f.tp)
	tracer := f.tp.Tracer("test")

	one := func(t *testing.T, l *redislock.Lock, fn func(ctx context.Context) error) (sdktrace.ReadOnlySpan, error) {
		t.Helper()
		f.spans.Reset()
		ctx, parent := tracer.Start(context.Background(), "request")
		err := redislockotel.WithLock(ctx, l, fn, tp)
		parent.End()
		spans := f.ended("redislock.hold")
		if len(spans) != 1 {
			t.Fatalf("%d hold spans, want 1", len(spans))
		}
		if got, want := spans[0].Parent().SpanID(), parent.SpanContext().SpanID(); got != want {
			t.Errorf("hold span's parent = %v, want the caller's span %v", got, want)
		}
		return spans[0], err
	}
	attr := func(s sdktrace.ReadOnlySpan, key string) any {
		v, ok := spanAttr(s, key)
		if !ok {
			return nil
		}
		return v.AsInterface()
	}

	t.Run("held", func(t *testing.T) {
		l := f.lock(c, "")
		s, err := one(t, l, func(ctx context.Context) error {
			_, span := tracer.Start(ctx, "work")
			span.End()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		work := f.ended("work")
		if len(work) != 1 || work[0].Parent().SpanID() != s.SpanContext().SpanID() {
			t.Errorf("fn's span is not a child of the hold span")
		}
		if got := attr(s, "redislock.outcome"); got != "acquired" {
			t.Errorf("outcome = %v, want acquired", got)
		}
		if got := attr(s, "redislock.lost"); got != false {
			t.Errorf("lost = %v, want false", got)
		}
		if s.Status().Code != codes.Unset || len(s.Events()) != 0 {
			t.Errorf("status %v, events %v; want unset, none", s.Status(), s.Events())
		}
	})

	t.Run("fn fails", func(t *testing.T) {
		l := f.lock(c, "")
		boom := errors.New("boom")
		s, err := one(t, l, func(context.Context) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("WithLock = %v, want fn's error", err)
		}
		if s.Status().Code != codes.Error || attr(s, "redislock.lost") != false {
			t.Errorf("status %v, lost %v; want error, false", s.Status().Code, attr(s, "redislock.lost"))
		}
	})

	t.Run("lost", func(t *testing.T) {
		l := f.lock(c, "", redislock.WithTTL(time.Second), redislock.WithHeartbeat(50*time.Millisecond))
		s, err := one(t, l, func(ctx context.Context) error {
			if err := c.Del(ctx, l.Key()).Err(); err != nil {
				return err
			}
			timer := time.NewTimer(3 * time.Second)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-timer.C:
				return errors.New("the loss did not cancel fn's context within 3s")
			}
		})
		if !errors.Is(err, redislock.ErrLockLost) {
			t.Fatalf("WithLock = %v, want ErrLockLost", err)
		}
		if got := attr(s, "redislock.lost"); got != true {
			t.Errorf("lost = %v, want true", got)
		}
		if got := attr(s, "redislock.loss.cause"); got != redislockotel.CauseTaken {
			t.Errorf("loss cause = %v, want %s", got, redislockotel.CauseTaken)
		}
		if s.Status().Code != codes.Error {
			t.Errorf("status = %v, want error", s.Status())
		}
		if ev := s.Events(); len(ev) == 0 || ev[0].Name != "redislock.lost" {
			t.Errorf("events %v, want redislock.lost first", ev)
		}
	})

	t.Run("lost found by the release", func(t *testing.T) {
		l := f.lock(c, "", redislock.WithTTL(20*time.Second))
		s, err := one(t, l, func(ctx context.Context) error { return c.Del(ctx, l.Key()).Err() })
		if !errors.Is(err, redislock.ErrLockLost) {
			t.Fatalf("WithLock = %v, want ErrLockLost", err)
		}
		if got := attr(s, "redislock.loss.cause"); got != redislockotel.CauseReleasedLost {
			t.Errorf("loss cause = %v, want %s", got, redislockotel.CauseReleasedLost)
		}
	})

	t.Run("not acquired", func(t *testing.T) {
		holder := f.lock(c, "")
		if err := holder.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer holder.Release(context.Background())
		l := f.lock(c, "", redislock.WithWaitTimeout(50*time.Millisecond))
		ran := false
		s, err := one(t, l, func(context.Context) error { ran = true; return nil })
		if !errors.Is(err, redislock.ErrNotAcquired) || ran {
			t.Fatalf("WithLock of a held lock = %v, fn ran: %v; want ErrNotAcquired, not run", err, ran)
		}
		if got := attr(s, "redislock.outcome"); got != "timed_out" || s.Status().Code != codes.Error {
			t.Errorf("outcome %v, status %v; want timed_out, error", got, s.Status().Code)
		}
		if d := s.EndTime().Sub(s.StartTime()); d < 50*time.Millisecond {
			t.Errorf("span lasts %v, want the 50ms wait at least", d)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		if err := redislockotel.WithLock(context.Background(), nil, func(context.Context) error { return nil }); !errors.Is(err, redislock.ErrInvalidArgument) {
			t.Errorf("WithLock(nil lock) = %v, want ErrInvalidArgument", err)
		}
		if err := redislockotel.WithLock(context.Background(), f.lock(c, ""), nil); !errors.Is(err, redislock.ErrInvalidArgument) {
			t.Errorf("WithLock(nil fn) = %v, want ErrInvalidArgument", err)
		}
	})
}
