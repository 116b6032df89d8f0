package redislock

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

// Idle release channels are unsubscribed the linger after their last
// waiter left, however often other locks of the same client see brief
// contention meanwhile.
func TestIdleChannelsUnsubscribedUnderChurn(t *testing.T) {
	setNotifyLinger(t, 200*time.Millisecond)
	srv := redistest.Start(t)
	admin := srv.Client(t)
	holders := srv.Client(t)
	c := srv.Client(t)
	ctx := context.Background()

	const keys = 200
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ls []*Lock
	for i := range keys {
		name := "k" + strconv.Itoa(i)
		require.NoError(t, mustNew(t, holders, name, WithoutHeartbeat(), WithTTL(time.Minute)).Acquire(ctx))
		l := mustNew(t, c, name)
		ls = append(ls, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.ErrorIs(t, l.Acquire(wctx), context.Canceled)
		}()
	}
	waitFor(t, 10*time.Second, func() bool {
		for _, l := range ls {
			if n, ok := queueOf(l); n != 1 || !ok {
				return false
			}
		}
		return true
	}, "all waiters subscribed")

	// Brief contention on another lock, four times per linger period,
	// until the test ends.
	churn := mustNew(t, holders, "churn", WithoutHeartbeat(), WithTTL(time.Minute))
	require.NoError(t, churn.Acquire(ctx))
	churner := mustNew(t, c, "churn", WithWaitTimeout(5*time.Millisecond))
	stop := make(chan struct{})
	churned := make(chan struct{})
	go func() {
		defer close(churned)
		tick := time.NewTicker(time.Duration(notifyLinger.Load()) / 4)
		defer tick.Stop()
		for range 1000 { // bounded; the test stops it long before
			if err := churner.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("contended Acquire: %v", err)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-churned }()

	cancel()
	wg.Wait()
	idle := time.Now()
	deadline := idle.Add(10 * time.Duration(notifyLinger.Load()))
	for {
		chans, err := admin.PubSubChannels(ctx, "*").Result()
		require.NoError(t, err)
		if len(chans) == 0 || len(chans) == 1 && chans[0] == churner.channel {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d channels still subscribed %v after their last waiter left (linger %v), while another lock churns",
				len(chans), time.Since(idle), time.Duration(notifyLinger.Load()))
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("idle channels unsubscribed %v after their last waiter left (linger %v)", time.Since(idle), time.Duration(notifyLinger.Load()))
}
