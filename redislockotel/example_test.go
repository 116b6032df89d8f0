package redislockotel_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

// Locks report to Prometheus through the OpenTelemetry exporter; the
// example prints the lines of /metrics that do not depend on timing.
func Example_prometheus() {
	mr := miniredis.NewMiniRedis() // an in-process Redis, so the example runs without setup
	if err := mr.Start(); err != nil {
		panic(err)
	}
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		panic(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(ctx)
	obs, err := redislockotel.NewObserver(redislockotel.WithMeterProvider(mp))
	if err != nil {
		panic(err)
	}

	lock, err := redislock.New(client, "report", redislock.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	other, err := redislock.New(client, "report", redislock.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	for range 3 {
		if err := lock.Acquire(ctx); err != nil {
			panic(err)
		}
		if ok, _ := other.TryAcquire(ctx); ok {
			panic("two owners")
		}
		if err := lock.Release(ctx); err != nil {
			panic(err)
		}
	}
	if err := lock.Acquire(ctx); err != nil { // still held when scraped
		panic(err)
	}
	defer lock.Release(ctx)

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "# TYPE") || strings.Contains(line, "_count") ||
			strings.HasPrefix(line, "redislock_holds") {
			fmt.Print(line)
		}
	}
	// Output:
	// # TYPE redislock_acquire_wait_seconds histogram
	// redislock_acquire_wait_seconds_count{fresh="false",outcome="busy",primitive="mutex"} 3
	// redislock_acquire_wait_seconds_count{fresh="true",outcome="acquired",primitive="mutex"} 4
	// # TYPE redislock_hold_duration_seconds histogram
	// redislock_hold_duration_seconds_count{primitive="mutex"} 3
	// # TYPE redislock_holds gauge
	// redislock_holds{primitive="mutex"} 1
}
