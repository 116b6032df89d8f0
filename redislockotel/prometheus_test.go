package redislockotel_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

// What a Prometheus scrape of /metrics gets after acquisitions, a wait, a
// timeout, renewals and a loss against a real Redis. With
// REDISLOCKOTEL_METRICS_OUT set, the text is also written to that file.
func TestPrometheusExposition(t *testing.T) {
	c := startRedis(t).client(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	t.Cleanup(func() { _ = mp.Shutdown(ctx) })
	obs, err := redislockotel.NewObserver(redislockotel.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	newLock := func(opts ...redislock.Option) *redislock.Lock {
		l, err := redislock.New(c, "report", append([]redislock.Option{redislock.WithObserver(obs)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a := newLock(redislock.WithTTL(300*time.Millisecond), redislock.WithHeartbeat(50*time.Millisecond))
	b := newLock(redislock.WithWaitTimeout(50 * time.Millisecond))
	w := newLock(redislock.WithWaitTimeout(5 * time.Second))

	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx); !errors.Is(err, redislock.ErrNotAcquired) {
		t.Fatalf("Acquire of a held lock = %v, want ErrNotAcquired", err)
	}
	got := make(chan error, 1)
	go func() { got <- w.Acquire(ctx) }()
	time.Sleep(150 * time.Millisecond) // a holds the lock, renewed, while w waits
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ctx, w.Key()).Err(); err != nil { // w's hold is taken from it
		t.Fatal(err)
	}
	if err := w.Release(ctx); !errors.Is(err, redislock.ErrLockLost) {
		t.Fatalf("Release of a taken hold = %v, want ErrLockLost", err)
	}

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	t.Logf("GET /metrics:\n%s", text)
	if out := os.Getenv("REDISLOCKOTEL_METRICS_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{
		`redislock_acquire_wait_seconds_count{fresh="true",outcome="acquired",primitive="mutex"} 2`,
		`redislock_acquire_wait_seconds_count{fresh="false",outcome="timed_out",primitive="mutex"} 1`,
		`redislock_hold_duration_seconds_count{primitive="mutex"} 2`,
		`redislock_holds{primitive="mutex"} 0`,
		`redislock_losses_total{cause="released_lost",primitive="mutex"} 1`,
		`redislock_renewal_failures_total{primitive="mutex"} 0`,
		`# TYPE redislock_renewals_total counter`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks the line %s", want)
		}
	}
}
