package redislock

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A notifier wakes the waiters of one Redis client. It owns one pub/sub
// connection, shared by every waiter of every lock on that client, and
// subscribes to a lock's release channel only while someone in this process
// waits for that lock (and notifyLinger after, to spare a resubscription
// when contention goes on). Waiters of one lock queue in FIFO order and only
// the head of the queue tries to acquire; a release message wakes the head.
type notifier struct {
	client redis.UniversalClient

	mu     sync.Mutex
	queues map[string]*waitQueue // by channel
	ps     *redis.PubSub         // nil when no channel is subscribed
	stop   chan struct{}         // closed to stop the reader of ps
	done   chan struct{}         // closed when the reader of ps has returned
	timer  *time.Timer           // runs sweep
}

// waitQueue is the local queue of waiters for one lock.
type waitQueue struct {
	channel   string
	waiters   []*waiter     // FIFO; the head is the one that tries
	ready     chan struct{} // closed when the subscription is confirmed
	confirmed bool
	idleSince time.Time // when the last waiter left; zero while in use
}

type waiter struct {
	q    *waitQueue
	wake chan struct{} // capacity 1: a wake-up is never lost, never blocks
}

// notifyLinger is how long a release channel stays subscribed after its last
// waiter left, and so how long the connection stays open after the last one.
var notifyLinger = time.Second

// waiting counts the waiters of the process, so an uncontended Acquire can
// skip looking for a queue to join.
var waiting atomic.Int64

var notifiers struct {
	mu sync.Mutex
	m  map[redis.UniversalClient]*notifier
}

func notifierFor(client redis.UniversalClient) *notifier {
	notifiers.mu.Lock()
	defer notifiers.mu.Unlock()
	n := notifiers.m[client]
	if n == nil {
		n = &notifier{client: client, queues: make(map[string]*waitQueue)}
		n.timer = time.AfterFunc(time.Hour, n.sweep)
		n.timer.Stop()
		if notifiers.m == nil {
			notifiers.m = make(map[redis.UniversalClient]*notifier)
		}
		notifiers.m[client] = n
	}
	return n
}

// queued reports whether any waiter in this process waits for channel on
// client, so that a new Acquire queues behind it instead of barging in.
func queued(client redis.UniversalClient, channel string) bool {
	if waiting.Load() == 0 {
		return false
	}
	notifiers.mu.Lock()
	n := notifiers.m[client]
	notifiers.mu.Unlock()
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[channel]
	return q != nil && len(q.waiters) > 0
}

// join appends a waiter for channel, subscribing to it if needed. The
// subscription is confirmed when the waiter's ready channel closes.
func (n *notifier) join(channel string) *waiter {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[channel]
	if q == nil {
		q = &waitQueue{channel: channel, ready: make(chan struct{})}
		n.queues[channel] = q
		n.subscribeLocked(q)
	}
	w := &waiter{q: q, wake: make(chan struct{}, 1)}
	q.waiters = append(q.waiters, w)
	q.idleSince = time.Time{}
	waiting.Add(1)
	return w
}

// subscribeLocked sends SUBSCRIBE for q, starting the connection and its
// reader if needed. The write does not wait for the reply, which the reader
// receives. n.mu must be held: subscribing and unsubscribing one channel
// must reach the server in the order the queues change.
func (n *notifier) subscribeLocked(q *waitQueue) {
	if n.ps == nil {
		n.ps = n.client.Subscribe(context.Background())
		n.stop, n.done = make(chan struct{}), make(chan struct{})
		go n.read(n.ps, n.stop, n.done)
	}
	// An error here leaves q unconfirmed: its waiters poll until the reader
	// reconnects and go-redis resubscribes.
	_ = n.ps.Subscribe(context.Background(), q.channel)
}

// isHead reports whether w is at the head of its queue.
func (n *notifier) isHead(w *waiter) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(w.q.waiters) > 0 && w.q.waiters[0] == w
}

// leave removes w from its queue. A head that leaves without the lock wakes
// the next waiter to try; one that leaves holding it does not, since the next
// try could only fail until its release is announced.
func (n *notifier) leave(w *waiter, acquired bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := w.q
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			waiting.Add(-1)
			if i == 0 && !acquired && len(q.waiters) > 0 {
				q.waiters[0].signal()
			}
			break
		}
	}
	if len(q.waiters) == 0 {
		q.waiters = nil
		q.idleSince = time.Now()
		n.timer.Reset(notifyLinger)
	}
}

func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// read receives the messages of ps until stop is closed.
func (n *notifier) read(ps *redis.PubSub, stop, done chan struct{}) {
	defer close(done)
	var retry *time.Timer
	pause := time.Millisecond
	for {
		msg, err := ps.Receive(context.Background())
		select {
		case <-stop:
			if retry != nil {
				retry.Stop()
			}
			return
		default:
		}
		if err != nil {
			// Messages may have been missed while the connection was down:
			// let every head try again. go-redis reconnects and resubscribes
			// on the next Receive, unless the client was closed: then no
			// waiter can succeed, and their own requests tell them so.
			n.wakeHeads()
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			if retry == nil {
				retry = time.NewTimer(pause)
			} else {
				retry.Reset(pause)
			}
			select {
			case <-stop:
				retry.Stop()
				return
			case <-retry.C:
			}
			pause = min(2*pause, time.Second)
			continue
		}
		pause = time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			n.released(m.Channel)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				n.confirmed(m.Channel)
			}
		}
	}
}

// released wakes the head waiter of channel.
func (n *notifier) released(channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if q := n.queues[channel]; q != nil && len(q.waiters) > 0 {
		q.waiters[0].signal()
	}
}

// confirmed marks channel's subscription as confirmed. A confirmation after
// a reconnect also wakes the head, in case a release went unheard meanwhile.
func (n *notifier) confirmed(channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[channel]
	if q == nil {
		return
	}
	if !q.confirmed {
		q.confirmed = true
		close(q.ready)
	} else if len(q.waiters) > 0 {
		q.waiters[0].signal()
	}
}

func (n *notifier) wakeHeads() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, q := range n.queues {
		if len(q.waiters) > 0 {
			q.waiters[0].signal()
		}
	}
}

// sweep unsubscribes the channels idle for notifyLinger and, once none is
// left, closes the connection and waits for its reader. It runs on n.timer.
func (n *notifier) sweep() {
	notifiers.mu.Lock()
	n.mu.Lock()
	now := time.Now()
	var next time.Duration
	var gone []string
	for ch, q := range n.queues {
		if len(q.waiters) > 0 {
			continue
		}
		if idle := now.Sub(q.idleSince); idle < notifyLinger {
			if next == 0 || notifyLinger-idle < next {
				next = notifyLinger - idle
			}
			continue
		}
		delete(n.queues, ch)
		gone = append(gone, ch)
	}
	var ps *redis.PubSub
	var stop, done chan struct{}
	if len(n.queues) == 0 {
		ps, stop, done = n.ps, n.stop, n.done
		n.ps, n.stop, n.done = nil, nil, nil
		if notifiers.m[n.client] == n {
			delete(notifiers.m, n.client)
		}
	} else if len(gone) > 0 && n.ps != nil {
		_ = n.ps.Unsubscribe(context.Background(), gone...)
	}
	if next > 0 {
		n.timer.Reset(next)
	}
	n.mu.Unlock()
	notifiers.mu.Unlock()
	if ps != nil {
		close(stop)
		_ = ps.Close()
		<-done
	}
}
