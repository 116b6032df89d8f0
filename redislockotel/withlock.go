package redislockotel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/redislock/redislock"
)

// WithLock runs fn under l as [redislock.Lock.WithLock] does, and records
// the critical section as a span "redislock.hold", a child of the span in
// ctx; fn's context carries that span, so fn's spans are its children. The
// span starts when fn is entered and ends after the release. It carries
// redislock.outcome ("acquired") and redislock.lost; when lost, also
// redislock.loss.cause (see [LossCause]) and an event "redislock.lost" at
// the moment the loss cancelled fn's context. When the acquire fails, fn
// does not run and the span covers the call, with the acquire's outcome
// ("timed_out", "cancelled", "error"). The span's status is an error
// whenever WithLock returns one.
//
// WithLock blocks as l.WithLock does, honours ctx the same way and returns
// what it returns; ErrInvalidArgument for a nil l or fn. Of the options,
// only WithTracerProvider applies.
func WithLock(ctx context.Context, l *redislock.Lock, fn func(ctx context.Context) error, opts ...Option) error {
	if l == nil || fn == nil {
		return fmt.Errorf("%w: redislockotel: nil lock or function", redislock.ErrInvalidArgument)
	}
	tracer := newConfig(opts).tracer()
	attrs := []attribute.KeyValue{
		attribute.String("redislock.name", l.Name()),
		attribute.String("redislock.key", l.Key()),
	}
	start := time.Now()
	var span trace.Span
	var lostInFn error
	err := l.WithLock(ctx, func(hctx context.Context) error {
		sctx, s := tracer.Start(hctx, "redislock.hold", trace.WithAttributes(attrs...))
		span = s
		// Mark the moment of a loss, which fn may notice only later.
		marked := make(chan struct{})
		stop := context.AfterFunc(hctx, func() {
			defer close(marked)
			if cause := context.Cause(hctx); errors.Is(cause, redislock.ErrLockLost) {
				s.AddEvent("redislock.lost", trace.WithAttributes(attribute.String("redislock.loss.cause", LossCause(cause))))
			}
		})
		err := fn(sctx)
		if !stop() {
			<-marked
		}
		if cause := context.Cause(hctx); errors.Is(cause, redislock.ErrLockLost) {
			lostInFn = cause
		}
		return err
	})
	if span == nil { // the acquire failed
		_, span = tracer.Start(ctx, "redislock.hold", trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		span.SetAttributes(attribute.String("redislock.outcome", acquireOutcome(err)))
	} else {
		span.SetAttributes(attribute.String("redislock.outcome", redislock.OutcomeAcquired.String()))
		lost := lostInFn
		if lost == nil && errors.Is(err, redislock.ErrLockLost) {
			lost = err // found by the release
		}
		span.SetAttributes(attribute.Bool("redislock.lost", lost != nil))
		if lost != nil {
			span.SetAttributes(attribute.String("redislock.loss.cause", LossCause(lost)))
		}
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	return err
}

// acquireOutcome names how a failed acquire ended, as Outcome.String does.
func acquireOutcome(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return redislock.OutcomeTimedOut.String()
	case errors.Is(err, context.Canceled):
		return redislock.OutcomeCancelled.String()
	}
	return redislock.OutcomeError.String()
}
