package redislockotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meters and tracers this
// package makes.
const ScopeName = "github.com/redislock/redislock/redislockotel"

// An Option configures [NewObserver] or [WithLock].
type Option func(*config)

type config struct {
	meters   metric.MeterProvider
	tracers  trace.TracerProvider
	withName bool
}

// WithMeterProvider sets where metrics go. Default: otel.GetMeterProvider()
// when NewObserver is called; nil means the default.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.meters = mp }
}

// WithTracerProvider sets where spans go. Default: otel.GetTracerProvider()
// when NewObserver or WithLock is called; nil means the default.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tracers = tp }
}

// WithNameAttribute adds the lock's name to every metric as the attribute
// redislock.name. Each name is then a series of its own: use it only when
// the names are few and fixed. Default: no name on metrics (spans always
// have it).
func WithNameAttribute() Option {
	return func(c *config) { c.withName = true }
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.meters == nil {
		c.meters = otel.GetMeterProvider()
	}
	if c.tracers == nil {
		c.tracers = otel.GetTracerProvider()
	}
	return c
}

func (c config) tracer() trace.Tracer { return c.tracers.Tracer(ScopeName) }
