package main

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

// TestSteps runs every step of the demo on the embedded Redis, so that the
// README's first command keeps working.
func TestSteps(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Setenv("REDIS_ADDR", "")
	client, stop, _ := connect()
	defer stop()
	ctx := context.Background()
	for _, step := range []func(context.Context, *redis.Client, string) error{contend, reenter, heartbeat, stolen} {
		if err := step(ctx, client, "demo-test:"); err != nil {
			t.Fatal(err)
		}
	}
}
