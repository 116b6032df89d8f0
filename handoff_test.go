package redislock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/redistest"
)

// scriptCounter counts the EVALSHA and EVAL commands a client sends, by
// script, and runs before, if set, ahead of each.
type scriptCounter struct {
	mu     sync.Mutex
	counts map[string]int // by SHA
	before func(sha string)
}

func (s *scriptCounter) count(sha string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[sha]
}

func (s *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) > 1 && strings.EqualFold(cmd.Name(), "evalsha") {
			sha, _ := args[1].(string)
			s.mu.Lock()
			if s.counts == nil {
				s.counts = make(map[string]int)
			}
			s.counts[sha]++
			before := s.before
			s.mu.Unlock()
			if before != nil {
				before(sha)
			}
		}
		return next(ctx, cmd)
	}
}
func (s *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// waitQueued waits until l's lock has n waiters in this process, its
// release subscription is confirmed, and the head has sent no request for
// 50 ms: it has made its attempts and sleeps.
func waitQueued(t *testing.T, l *Lock, n int) {
	t.Helper()
	var idleSince time.Time
	waitFor(t, 5*time.Second, func() bool {
		k, ok := queueOf(l)
		if k != n || !ok || headBusy(l) {
			idleSince = time.Time{}
			return false
		}
		if idleSince.IsZero() {
			idleSince = time.Now()
		}
		return time.Since(idleSince) > 50*time.Millisecond
	}, "waiters queued and subscribed, the head asleep")
}

// headBusy reports whether the Lock of the head waiter for l's lock has a
// request in flight.
func headBusy(l *Lock) bool {
	notifiers.mu.Lock()
	n := notifiers.m[l.client]
	notifiers.mu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[l.channel]
	return q == nil || len(q.waiters) == 0 || len(q.waiters[0].lock.op) > 0
}

// The last release hands the lock to the waiter at the head of this
// process's queue in the same request: the waiter sends no acquire of its
// own, holds a new hold (count 1, a larger token, its own owner on the
// server) and has its hold renewed.
func TestReleaseHandsLockToLocalWaiter(t *testing.T) {
	counter := &scriptCounter{}
	c := redistest.Client(t)
	c.AddHook(counter)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	next := mustNew(t, c, name, WithTTL(time.Second), WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	first := holder.Token()
	got := acquireAsync(ctx, next)
	waitQueued(t, holder, 1)

	acquires := counter.count(mutex.acquireSHA.(string))
	released := time.Now()
	require.NoError(t, holder.Release(ctx))
	var r acquired
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter was not handed the lock")
	}
	require.NoError(t, r.err)
	t.Logf("release start to the next holder's return: %v", r.at.Sub(released))
	assert.Equal(t, acquires, counter.count(mutex.acquireSHA.(string)), "the waiter sent an acquire of its own")
	assert.Equal(t, 1, counter.count(mutex.handoffSHA.(string)), "hand-offs sent")
	assert.False(t, holder.Held())
	assert.True(t, next.Held())
	assert.Equal(t, 1, next.Count())
	assert.Greater(t, next.Token(), first)
	v, err := c.HMGet(ctx, next.Key(), "owner", "count", "token").Result()
	require.NoError(t, err)
	assert.Equal(t, []any{next.Owner(), "1", strconv.FormatInt(next.Token(), 10)}, v)
	pttl, err := c.PTTL(ctx, next.Key()).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, 900*time.Millisecond, "the heir's lease is its own TTL")
	assert.LessOrEqual(t, pttl, time.Second)

	// Renewed by the heartbeat past its TTL, then released like any hold.
	time.Sleep(1500 * time.Millisecond)
	require.True(t, next.Held())
	owner, err := c.HGet(ctx, next.Key(), "owner").Result()
	require.NoError(t, err)
	assert.Equal(t, next.Owner(), owner)
	require.NoError(t, next.Release(ctx))
	assert.Zero(t, c.Exists(ctx, next.Key()).Val())
}

// A waiter whose wait ends while the release is handing it the lock does
// not get it, and the lock is free once the release returns: nothing is
// left held that nobody knows of.
func TestHandOffToWaiterThatLeftIsGivenBack(t *testing.T) {
	counter := &scriptCounter{}
	c := redistest.Client(t)
	c.AddHook(counter)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	next := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := acquireAsync(wctx, next)
	waitQueued(t, holder, 1)

	handoff := mutex.handoffSHA.(string)
	counter.mu.Lock()
	counter.before = func(sha string) {
		if sha == handoff {
			cancel()
			// The waiter's wait ends before the reply comes.
			waitFor(t, 5*time.Second, func() bool { k, _ := queueOf(next); return k == 0 }, "waiter gone")
		}
	}
	counter.mu.Unlock()
	require.NoError(t, holder.Release(ctx))
	r := <-got
	require.ErrorIs(t, r.err, ErrNotAcquired)
	require.ErrorIs(t, r.err, context.Canceled)
	assert.Equal(t, 1, counter.count(handoff), "the release handed the lock over")
	assert.False(t, next.Held())
	assert.Zero(t, c.Exists(ctx, holder.Key()).Val(), "the handed-over hold was given back")
	ok, err := mustNew(t, c, name).TryAcquire(ctx)
	require.NoError(t, err)
	assert.True(t, ok)
}

// A waiter whose wait ends after the hold was handed to it keeps it: its
// Acquire returns it rather than an error with a hold nobody releases.
func TestHandedOverHoldIsKeptWhenTheWaitEnds(t *testing.T) {
	counter := &scriptCounter{}
	c := redistest.Client(t)
	c.AddHook(counter)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	next := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	n, w := join(next) // the waiter next's wait would be
	waitQueued(t, holder, 1)
	require.NoError(t, holder.Release(ctx))
	h0, _ := w.handed()
	require.NotNil(t, h0, "the hold was handed over")
	h := w.abandon()
	require.NotNil(t, h, "a wait that ends keeps the hold handed to it")
	n.leave(w, next.opts.ttl)
	assert.True(t, next.Held())
	require.NoError(t, next.Release(ctx))
	assert.Zero(t, c.Exists(ctx, next.Key()).Val())
}

// When someone outside the queue (another client, another process) was
// refused while the lock was held, the release does not hand it over: it
// frees it for all and announces it. A refusal of the heir itself does not
// count.
func TestHandOffYieldsToOthersKeptWaiting(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	other := redistest.Client(t)
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	next := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	outsider := mustNew(t, other, name)

	require.NoError(t, holder.Acquire(ctx))
	got := acquireAsync(ctx, next) // refused first: its process is recorded
	waitQueued(t, holder, 1)
	assert.Equal(t, processGroup, c.HGet(ctx, holder.Key(), "waits").Val(), "the waits record")
	require.NoError(t, holder.Release(ctx))
	require.NoError(t, (<-got).err)
	from, err := c.HGet(ctx, next.Key(), "from").Result()
	require.NoError(t, err, "not handed over after the heir's own refusal")
	assert.NotEmpty(t, from)

	assert.Equal(t, "", c.HGet(ctx, next.Key(), "waits").Val(), "a hand-off starts a new record")
	ok, err := outsider.TryAcquire(ctx) // refused, not waiting: recorded as "0"
	require.NoError(t, err)
	require.False(t, ok)
	assert.Equal(t, "0", c.HGet(ctx, next.Key(), "waits").Val(), "the waits record")

	third := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	got = acquireAsync(ctx, third)
	waitQueued(t, holder, 1)
	sub := other.Subscribe(ctx, next.channel)
	defer sub.Close()
	_, err = sub.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, next.Release(ctx))
	select {
	case m := <-sub.Channel():
		assert.Equal(t, next.channel, m.Channel)
	case <-time.After(5 * time.Second):
		t.Fatal("the release was not announced")
	}
	require.NoError(t, (<-got).err)
	assert.Zero(t, c.HExists(ctx, third.Key(), "from").Val(), "handed over past someone kept waiting")

	// For a while the process lets others in at every release, though
	// nobody outside was refused during this hold: a poller that sleeps
	// between its tries finds the lock free as often as without hand-offs.
	fourth := mustNew(t, c, name, WithRetryBackoff(10*time.Second, 10*time.Second))
	got = acquireAsync(ctx, fourth)
	waitQueued(t, holder, 1)
	require.NoError(t, third.Release(ctx))
	require.NoError(t, (<-got).err)
	assert.Zero(t, c.HExists(ctx, fourth.Key(), "from").Val(), "handed over while sharing")
	require.NoError(t, fourth.Release(ctx))
}

// At most maxHandoffs hand-offs come in a row; the next release frees the
// lock, so that waiters that record nothing (the Python original) get a
// chance.
func TestHandOffsInARowAreBounded(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t)
	name := redistest.Key(t)
	locks := []*Lock{mustNew(t, c, name), mustNew(t, c, name)}
	require.NoError(t, locks[0].Acquire(ctx))
	var handedOver int
	for i := 0; i < maxHandoffs+1; i++ {
		cur, nxt := locks[i%2], locks[(i+1)%2]
		got := acquireAsync(ctx, nxt)
		waitQueued(t, cur, 1)
		require.NoError(t, cur.Release(ctx))
		require.NoError(t, (<-got).err)
		if c.HExists(ctx, nxt.Key(), "from").Val() {
			handedOver++
			assert.Equal(t, strconv.Itoa(handedOver), c.HGet(ctx, nxt.Key(), "chain").Val())
		} else {
			break
		}
	}
	assert.Equal(t, maxHandoffs, handedOver)
}

// Waiters on two clients of one key take turns: the hand-offs between the
// waiters of one client do not keep the other's out.
func TestHandOffDoesNotStarveAnotherClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := redistest.Key(t)
	clients := []*redis.Client{redistest.Client(t), redistest.Client(t)}
	const perClient = 3
	const window = 1500 * time.Millisecond
	var counts [2][perClient]atomic.Int32
	var inside atomic.Int32
	var wg sync.WaitGroup
	stop := time.Now().Add(window)
	errs := make(chan error, 2*perClient)
	for ci, c := range clients {
		for g := 0; g < perClient; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l, err := New(c, name, WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
				if err != nil {
					errs <- err
					return
				}
				for i := 0; i < 5000 && time.Now().Before(stop); i++ {
					if err := l.Acquire(ctx); err != nil {
						errs <- err
						return
					}
					if inside.Add(1) != 1 {
						errs <- errors.New("two holders at once")
					}
					time.Sleep(200 * time.Microsecond)
					inside.Add(-1)
					counts[ci][g].Add(1)
					if err := l.Release(ctx); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var total [2]int32
	for ci := range counts {
		for g := range counts[ci] {
			n := counts[ci][g].Load()
			assert.Positive(t, n, "client %d goroutine %d never acquired", ci, g)
			total[ci] += n
		}
	}
	t.Logf("acquisitions per client: %v", total)
	all := total[0] + total[1]
	for ci := range total {
		assert.GreaterOrEqual(t, float64(total[ci]), 0.2*float64(all), "client %d starved", ci)
	}
}

// The heir's validity deadline counts from the start of the releasing
// request that set its lease, not from when the answer came.
func TestHandedOverDeadlineCountsFromTheRequest(t *testing.T) {
	counter := &scriptCounter{}
	c := redistest.Client(t)
	c.AddHook(counter)
	ctx := context.Background()
	name := redistest.Key(t)
	holder := mustNew(t, c, name)
	next := mustNew(t, c, name, WithTTL(2*time.Second), WithRetryBackoff(10*time.Second, 10*time.Second))
	require.NoError(t, holder.Acquire(ctx))
	got := acquireAsync(ctx, next)
	waitQueued(t, holder, 1)
	const delay = 300 * time.Millisecond
	handoff := mutex.handoffSHA.(string)
	counter.mu.Lock()
	counter.before = func(sha string) {
		if sha == handoff {
			time.Sleep(delay) // the request takes this long on its way
		}
	}
	counter.mu.Unlock()
	before := time.Now()
	require.NoError(t, holder.Release(ctx))
	after := time.Now()
	require.NoError(t, (<-got).err)
	require.Equal(t, 1, counter.count(handoff))
	next.mu.Lock()
	deadline := next.hold.deadline
	next.mu.Unlock()
	validity := next.validity(2 * time.Second)
	assert.False(t, deadline.Before(before.Add(validity)), "deadline before the request started")
	assert.True(t, deadline.Before(after.Add(validity-delay+50*time.Millisecond)),
		"deadline %v after the release returned + validity; counted from the answer", deadline.Sub(after.Add(validity)))
	require.NoError(t, next.Release(ctx))
}

// A release that lets others in (someone outside this process's queue was
// kept waiting) has its heir wait before trying, so that those others, who
// hear of the release about as soon as the heir, get the lock first.
func TestHeirLetsOthersTryFirst(t *testing.T) {
	ctx := context.Background()
	c, other := redistest.Client(t), redistest.Client(t)
	name := redistest.Key(t)
	slow := WithRetryBackoff(10*time.Second, 10*time.Second)
	const rounds = 20
	outsiderFirst := 0
	for i := 0; i < rounds; i++ {
		holder := mustNew(t, c, name)
		heir := mustNew(t, c, name, slow)
		outsider := mustNew(t, other, name, slow)
		require.NoError(t, holder.Acquire(ctx))
		gotOutsider := acquireAsync(ctx, outsider) // refused: recorded in the hash
		waitQueued(t, outsider, 1)
		gotHeir := acquireAsync(ctx, heir)
		waitQueued(t, holder, 1)
		require.NoError(t, holder.Release(ctx))
		second := heir
		select {
		case r := <-gotOutsider:
			require.NoError(t, r.err)
			outsiderFirst++
			require.NoError(t, outsider.Release(ctx))
			require.NoError(t, (<-gotHeir).err)
		case r := <-gotHeir:
			require.NoError(t, r.err)
			second = outsider
			require.NoError(t, heir.Release(ctx))
			require.NoError(t, (<-gotOutsider).err)
		}
		require.NoError(t, second.Release(ctx))
	}
	t.Logf("the outsider came first in %d of %d rounds", outsiderFirst, rounds)
	assert.GreaterOrEqual(t, outsiderFirst, rounds*3/4)
}

// Waiters of one process and client that take turns cost about one
// request per acquisition: their own refused attempts, made before they
// queue, do not stop the hand-offs between them.
func TestHandOffInOneProcessTakesOneRequest(t *testing.T) {
	counter := &scriptCounter{}
	c := redistest.Client(t)
	c.AddHook(counter)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := redistest.Key(t)
	var next atomic.Int64
	const total = 400
	var wg sync.WaitGroup
	for range 4 {
		l := mustNew(t, c, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= total {
				if err := l.Acquire(ctx); err != nil {
					t.Error(err)
					return
				}
				time.Sleep(200 * time.Microsecond)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	counter.mu.Lock()
	requests := 0
	for _, n := range counter.counts {
		requests += n
	}
	handoffs := counter.counts[mutex.handoffSHA.(string)]
	counter.mu.Unlock()
	t.Logf("%d acquisitions: %d requests, %d hand-offs", total, requests, handoffs)
	assert.Greater(t, handoffs, total*3/4)
	assert.Less(t, float64(requests)/total, 1.5, "requests per acquisition")
}
