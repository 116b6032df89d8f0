package redislockotel_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/redislockotel"
)

// redislock.renewals is documented as "Holds renewed by the heartbeat", and
// the Event doc gives Failures as the holds "not renewed this time (to be
// retried)". A renewal that Redis refuses (the key is gone: the hold is
// lost) is counted in Event.Holds but not in Failures, so the adapter
// counts it as a successful renewal.
func TestRegressionRefusedRenewalCountedAsRenewed(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	f := newFixture(t)
	l := f.lock(c, "", redislock.WithTTL(2*time.Second), redislock.WithHeartbeat(100*time.Millisecond))
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// Gone before the first renewal round, 100 ms from now.
	if err := c.Del(ctx, l.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("loss not seen")
	}
	_ = l.Release(ctx)
	if got := f.sum("redislock.renewals"); got != 0 {
		t.Errorf("redislock.renewals = %d after a hold whose only renewal was refused (key gone), want 0", got)
	}
	if got := f.sum("redislock.losses"); got != 1 {
		t.Errorf("losses = %d, want 1", got)
	}
}

// With WithNameAttribute, metrics carry "redislock.name". When several
// Locks share one WithObserver option value (as a service that builds its
// options once does), the library sends one EventRenewal per round for all
// of them, named after one of the Locks only: the renewals of the others
// are counted under that one's name.
func TestRegressionSharedObserverRenewalsMisnamed(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t)
	ctx := context.Background()
	f := newFixture(t, redislockotel.WithNameAttribute())
	shared := []redislock.Option{redislock.WithObserver(f.obs), redislock.WithTTL(time.Second), redislock.WithHeartbeat(50 * time.Millisecond)}
	a, err := redislock.New(c, "shared-a", shared...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := redislock.New(c, "shared-b", shared...)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*redislock.Lock{a, b} {
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 3*time.Second, func() bool { return f.sum("redislock.renewals") >= 10 }, "renewals")
	for _, l := range []*redislock.Lock{a, b} {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	na := f.sum("redislock.renewals", attribute.String("redislock.name", "shared-a"))
	nb := f.sum("redislock.renewals", attribute.String("redislock.name", "shared-b"))
	t.Logf("renewals named shared-a: %d, shared-b: %d", na, nb)
	if na == 0 || nb == 0 {
		t.Errorf("both locks were renewed all along, yet renewals named shared-a = %d, shared-b = %d", na, nb)
	}
}
