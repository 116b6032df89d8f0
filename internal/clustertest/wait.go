package clustertest

import (
	"context"
	"testing"
	"time"
)

const (
	settleTimeout = 30 * time.Second      // for a topology change to be agreed on
	settlePoll    = 50 * time.Millisecond // between agreement checks
	cmdTimeout    = 5 * time.Second       // for one admin command
)

// waitUntil calls check every settlePoll until it returns nil. After
// timeout it fails tb with what and check's last error.
func waitUntil(tb testing.TB, timeout time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			tb.Fatalf("clustertest: %s: not done within %v: %v", what, timeout, err)
		case <-tick.C:
		}
	}
}

// cmdCtx bounds one admin command. It does not derive from tb.Context, so
// that the helpers work in a Cleanup function too.
func cmdCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), cmdTimeout)
}
