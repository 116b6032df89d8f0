package redislockotel_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

// fixture is an Observer on in-memory OpenTelemetry SDK providers.
type fixture struct {
	t      *testing.T
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	obs    *redislockotel.Observer
}

func newFixture(t *testing.T, opts ...redislockotel.Option) *fixture {
	t.Helper()
	f := &fixture{t: t, reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(f.reader))
	f.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = f.tp.Shutdown(context.Background())
	})
	obs, err := redislockotel.NewObserver(append([]redislockotel.Option{
		redislockotel.WithMeterProvider(mp), redislockotel.WithTracerProvider(f.tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	f.obs = obs
	return f
}

// lock returns a Lock on c reporting to f, named after the test and suffix.
func (f *fixture) lock(c redis.UniversalClient, suffix string, opts ...redislock.Option) *redislock.Lock {
	f.t.Helper()
	name := strings.NewReplacer("/", ":", " ", "_").Replace(f.t.Name()) + suffix
	l, err := redislock.New(c, name, append([]redislock.Option{redislock.WithObserver(f.obs)}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func (f *fixture) collect() metricdata.ResourceMetrics {
	f.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := f.reader.Collect(context.Background(), &rm); err != nil {
		f.t.Fatal(err)
	}
	return rm
}

func (f *fixture) metric(name string) (metricdata.Metrics, bool) {
	for _, sm := range f.collect().ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}

func has(set attribute.Set, want []attribute.KeyValue) bool {
	for _, kv := range want {
		if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
			return false
		}
	}
	return true
}

// sum adds up the points of the counter or up-down counter name whose
// attributes include want.
func (f *fixture) sum(name string, want ...attribute.KeyValue) int64 {
	f.t.Helper()
	m, ok := f.metric(name)
	if !ok {
		return 0
	}
	s, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		f.t.Fatalf("%s is a %T, not an int64 sum", name, m.Data)
	}
	var n int64
	for _, p := range s.DataPoints {
		if has(p.Attributes, want) {
			n += p.Value
		}
	}
	return n
}

// hist returns the count and sum of the histogram name's points whose
// attributes include want.
func (f *fixture) hist(name string, want ...attribute.KeyValue) (count uint64, sum float64) {
	f.t.Helper()
	m, ok := f.metric(name)
	if !ok {
		return 0, 0
	}
	h, ok := m.Data.(metricdata.Histogram[float64])
	if !ok {
		f.t.Fatalf("%s is a %T, not a float64 histogram", name, m.Data)
	}
	for _, p := range h.DataPoints {
		if has(p.Attributes, want) {
			count += p.Count
			sum += p.Sum
		}
	}
	return count, sum
}

// ended returns the ended spans named name.
func (f *fixture) ended(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

var (
	mutex    = attribute.String("primitive", "mutex")
	acquired = attribute.String("outcome", "acquired")
)
