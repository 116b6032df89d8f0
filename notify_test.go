package redislock

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

// queueOf returns the local wait queue of l's lock: its length and whether
// its subscription is confirmed.
func queueOf(l *Lock) (waiters int, confirmed bool) {
	notifiers.mu.Lock()
	n := notifiers.m[l.client]
	notifiers.mu.Unlock()
	if n == nil {
		return 0, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if q := n.queues[l.channel]; q != nil {
		return len(q.waiters), q.confirmed
	}
	return 0, false
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, msg)
		}
		time.Sleep(time.Millisecond)
	}
}

func mustNew(t *testing.T, c redis.UniversalClient, name string, opts ...Option) *Lock {
	t.Helper()
	l, err := New(c, name, opts...)
	require.NoError(t, err)
	return l
}

// A waiter whose poll interval is 10 s wakes right after a release: only the
// release message can explain it.
func TestWaiterWokenByRelease(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	waiter := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))

	acquired := make(chan time.Time, 1)
	go func() {
		if err := waiter.Acquire(ctx); err != nil {
			t.Error(err)
		}
		acquired <- time.Now()
	}()
	waitFor(t, 5*time.Second, func() bool { n, ok := queueOf(waiter); return n == 1 && ok }, "waiter subscribed")
	time.Sleep(20 * time.Millisecond) // let its attempt fail and its sleep begin
	require.NoError(t, holder.Release(ctx))
	released := time.Now()
	select {
	case at := <-acquired:
		took := at.Sub(released)
		t.Logf("release to acquire: %v", took)
		// Generous for a loaded CI machine, and still 50 times shorter than
		// the poll interval.
		assert.Less(t, took, 200*time.Millisecond)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken by the release")
	}
	require.NoError(t, waiter.Release(ctx))
}

// A release that announces nothing (the Python original's) still wakes the
// waiter within its poll interval.
func TestSilentReleaseWakesWithinPollInterval(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	const poll = 100 * time.Millisecond
	key := DefaultKeyPrefix + name
	require.NoError(t, c.HSet(ctx, key, "owner", "python", "count", 1).Err())
	require.NoError(t, c.PExpire(ctx, key, time.Minute).Err())
	waiter := mustNew(t, c, name, WithRetryBackoff(poll, poll))
	done := make(chan error, 1)
	go func() { done <- waiter.Acquire(ctx) }()
	waitFor(t, 5*time.Second, func() bool { n, ok := queueOf(waiter); return n == 1 && ok }, "waiter subscribed")
	require.NoError(t, c.Del(ctx, key).Err()) // no PUBLISH
	start := time.Now()
	select {
	case err := <-done:
		require.NoError(t, err)
		assert.Less(t, time.Since(start), poll+time.Second)
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken within its poll interval")
	}
	require.NoError(t, waiter.Release(ctx))
}

// clientsSubscribed returns, for each connection of the server with
// subscriptions, its number of subscribed channels.
func clientsSubscribed(t *testing.T, c *redis.Client) []int {
	list, err := c.ClientList(context.Background()).Result()
	require.NoError(t, err)
	var subs []int
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "sub="); ok {
				if n, _ := strconv.Atoi(v); n > 0 {
					subs = append(subs, n)
				}
			}
		}
	}
	return subs
}

func TestOneSubscriptionConnectionPerClient(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	holders := srv.Client(t)
	waiters := srv.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const keys = 100
	var wg sync.WaitGroup
	var ls []*Lock
	for i := 0; i < keys; i++ {
		name := "k" + strconv.Itoa(i)
		require.NoError(t, mustNew(t, holders, name, WithoutHeartbeat(), WithTTL(time.Minute)).Acquire(ctx))
		l := mustNew(t, waiters, name)
		ls = append(ls, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := l.Acquire(ctx)
			assert.ErrorIs(t, err, context.Canceled)
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
	assert.Equal(t, []int{keys}, clientsSubscribed(t, admin), "one connection subscribed to every channel")
	cancel()
	wg.Wait()
}

func TestCancelledWaitersLeaveNothingBehind(t *testing.T) {
	setNotifyLinger(t, 50*time.Millisecond)
	srv := redistest.Start(t)
	admin := srv.Client(t)
	c := srv.Client(t)
	ctx := context.Background()
	before := runtime.NumGoroutine()

	const keys, perKey = 10, 100
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	for k := 0; k < keys; k++ {
		name := "k" + strconv.Itoa(k)
		holder := mustNew(t, c, name)
		require.NoError(t, holder.Acquire(ctx))
		defer holder.Release(ctx)
		for i := 0; i < perKey; i++ {
			l := mustNew(t, c, name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := l.Acquire(wctx)
				if !errors.Is(err, ErrNotAcquired) || !errors.Is(err, context.Canceled) {
					t.Errorf("Acquire after cancel: %v", err)
				}
			}()
		}
	}
	waitFor(t, 10*time.Second, func() bool { return waiting.Load() == keys*perKey }, "all waiting")
	cancel()
	wg.Wait()
	assert.Zero(t, waiting.Load())
	waitFor(t, 5*time.Second, func() bool {
		chans, err := admin.PubSubChannels(ctx, "*").Result()
		return err == nil && len(chans) == 0
	}, "no channel left subscribed")
	waitFor(t, 5*time.Second, func() bool {
		notifiers.mu.Lock()
		defer notifiers.mu.Unlock()
		return notifiers.m[c] == nil
	}, "notifier retired")
	waitFor(t, 5*time.Second, func() bool { return runtime.NumGoroutine() <= before }, "goroutines back to "+strconv.Itoa(before))
	assert.Empty(t, clientsSubscribed(t, admin))
}

// A killed pub/sub connection is re-established and the waiters it served
// still learn of the next release.
func TestPubSubReconnectLosesNoWaiter(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	c := srv.Client(t)
	ctx := context.Background()
	holder := mustNew(t, c, "k")
	require.NoError(t, holder.Acquire(ctx))
	const n = 5
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		l := mustNew(t, c, "k", WithRetryBackoff(10*time.Second, 10*time.Second))
		go func() {
			err := l.Acquire(ctx)
			if err == nil {
				err = l.Release(ctx)
			}
			done <- err
		}()
	}
	waitFor(t, 5*time.Second, func() bool { n2, ok := queueOf(holder); return n2 == n && ok }, "waiters subscribed")
	killed, err := admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, killed)
	waitFor(t, 5*time.Second, func() bool { return len(clientsSubscribed(t, admin)) == 1 }, "resubscribed")
	require.NoError(t, holder.Release(ctx))
	for i := 0; i < n; i++ {
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("a waiter was lost with the connection")
		}
	}
}

// Waiters of one process take the lock in the order they asked for it.
func TestLocalWaitersFIFO(t *testing.T) {
	c := redistest.Client(t)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	require.NoError(t, holder.Acquire(ctx))
	const n = 6
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		l := mustNew(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			assert.NoError(t, l.Release(ctx))
		}()
		waitFor(t, 5*time.Second, func() bool { k, _ := queueOf(holder); return k == i+1 }, "waiter queued")
	}
	require.NoError(t, holder.Release(ctx))
	wg.Wait()
	assert.Equal(t, []int{0, 1, 2, 3, 4, 5}, order)
}

// setNotifyLinger sets notifyLinger for notifiers made during the test.
func setNotifyLinger(t *testing.T, d time.Duration) {
	t.Helper()
	old := notifyLinger.Swap(int64(d))
	t.Cleanup(func() { notifyLinger.Store(old) })
}
