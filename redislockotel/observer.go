package redislockotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/redislock/redislock"
)

// Bucket boundaries, in seconds: lock waits run from a round trip to the
// wait timeout; holds from milliseconds to minutes.
var (
	waitBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}
	holdBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600}
)

// An Observer records a Lock's events as metrics and spans. Pass it to
// [redislock.WithObserver]; one Observer may serve any number of Locks.
type Observer struct {
	tracer   trace.Tracer
	withName bool

	wait, held       metric.Float64Histogram
	holds            metric.Int64UpDownCounter
	losses           metric.Int64Counter
	renewals, failed metric.Int64Counter
}

var _ redislock.Observer = (*Observer)(nil)

// NewObserver makes the instruments of an Observer on the MeterProvider
// and TracerProvider the options give (default: the global ones). It does
// not block. It returns the Observer and the errors the MeterProvider gave
// while making instruments, if any; the Observer works even then, as the
// OpenTelemetry API hands back usable instruments with such errors.
func NewObserver(opts ...Option) (*Observer, error) {
	c := newConfig(opts)
	m := c.meters.Meter(ScopeName)
	o := &Observer{tracer: c.tracer(), withName: c.withName}
	var errs [6]error
	o.wait, errs[0] = m.Float64Histogram("redislock.acquire.wait", metric.WithUnit("s"),
		metric.WithDescription("Time an acquire call took, until it held the lock or gave up."),
		metric.WithExplicitBucketBoundaries(waitBuckets...))
	o.held, errs[1] = m.Float64Histogram("redislock.hold.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from the acquire of a hold to its last release."),
		metric.WithExplicitBucketBoundaries(holdBuckets...))
	o.holds, errs[2] = m.Int64UpDownCounter("redislock.holds", metric.WithUnit("{hold}"),
		metric.WithDescription("Holds live now: acquired, neither released nor lost."))
	o.losses, errs[3] = m.Int64Counter("redislock.losses", metric.WithUnit("{loss}"),
		metric.WithDescription("Holds lost: their key expired or went to another owner before their last release."))
	o.renewals, errs[4] = m.Int64Counter("redislock.renewals", metric.WithUnit("{renewal}"),
		metric.WithDescription("Holds renewed by the heartbeat."))
	o.failed, errs[5] = m.Int64Counter("redislock.renewal.failures", metric.WithUnit("{renewal}"),
		metric.WithDescription("Renewals that failed, to be retried while the lease lasts."))
	return o, errors.Join(errs[:]...)
}

// Observe records e. It does not block on I/O: the SDK's instruments and
// spans only buffer.
func (o *Observer) Observe(e redislock.Event) {
	ctx := e.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	prim := attribute.String("primitive", e.Primitive)
	switch e.Kind {
	case redislock.EventAcquire:
		o.traceAcquire(ctx, e)
		o.wait.Record(ctx, e.Wait.Seconds(), o.attrs(e, prim,
			attribute.String("outcome", e.Outcome.String()), attribute.Bool("fresh", e.Fresh)))
		if e.Outcome == redislock.OutcomeAcquired && e.Fresh {
			o.holds.Add(ctx, 1, o.attrs(e, prim))
		}
	case redislock.EventRelease:
		if e.Last {
			o.held.Record(ctx, e.Held.Seconds(), o.attrs(e, prim))
			o.holds.Add(ctx, -1, o.attrs(e, prim))
		}
	case redislock.EventRenewal:
		o.renewals.Add(ctx, int64(e.Holds-e.Failures-e.Refused), o.attrs(e, prim))
		o.failed.Add(ctx, int64(e.Failures), o.attrs(e, prim))
	case redislock.EventLoss:
		cause := LossCause(e.Err)
		o.losses.Add(ctx, 1, o.attrs(e, prim, attribute.String("cause", cause)))
		// A loss found by the last release follows that release's event,
		// which took the hold off the gauge already. Any other loss ends
		// the hold: its later Release reports no last level.
		if cause != CauseReleasedLost {
			o.holds.Add(ctx, -1, o.attrs(e, prim))
		}
	}
}

func (o *Observer) attrs(e redislock.Event, kv ...attribute.KeyValue) metric.MeasurementOption {
	if o.withName {
		kv = append(kv, attribute.String("redislock.name", e.Name))
	}
	return metric.WithAttributes(kv...)
}

// traceAcquire records the acquire call e reports as a span that ended
// now, after e.Wait, under the span of e.Ctx. Spans started by the call
// itself (a traced Redis client's) are its siblings, not its children: the
// observer hears of the call only when it returns.
func (o *Observer) traceAcquire(ctx context.Context, e redislock.Event) {
	end := time.Now()
	_, span := o.tracer.Start(ctx, "redislock.acquire",
		trace.WithTimestamp(end.Add(-e.Wait)),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("redislock.name", e.Name),
			attribute.String("redislock.key", e.Key),
			attribute.String("redislock.primitive", e.Primitive),
			attribute.String("redislock.outcome", e.Outcome.String()),
			attribute.Bool("redislock.fresh", e.Fresh),
		))
	if e.Err != nil {
		span.RecordError(e.Err, trace.WithTimestamp(end))
		span.SetStatus(codes.Error, e.Outcome.String())
	}
	span.End(trace.WithTimestamp(end))
}
