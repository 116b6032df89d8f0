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

	linger time.Duration // notifyLinger when n was made

	mu      sync.Mutex
	queues  map[string]*waitQueue // by channel
	conns   map[string]*subConn   // by shard address; "" on a single server
	timer   *time.Timer           // runs sweep
	sweepAt time.Time             // when timer fires; zero while it is stopped
}

// subConn is one pub/sub connection and its reader. On a cluster there is
// one per shard, subscribed with SSUBSCRIBE to the channels of the shard's
// slots; elsewhere one in all.
type subConn struct {
	addr     string
	ps       *redis.PubSub
	sharded  bool
	channels int           // channels subscribed through it
	stop     chan struct{} // closed to stop the reader
	done     chan struct{} // closed when the reader has returned

	// Subscription changes wait in pending, in the order the queues
	// changed, for a goroutine that sends them without n.mu (a send may have
	// to dial). writing says one is at it. Guarded by n.mu.
	pending []subChange
	writing bool
}

// subChange is a SUBSCRIBE (sub) or UNSUBSCRIBE of channels, or their
// sharded forms, waiting to be sent.
type subChange struct {
	sub      bool
	channels []string
}

// waitQueue is the local queue of waiters for one lock.
type waitQueue struct {
	key       string // the lock's
	channel   string
	conn      *subConn      // nil while not subscribed
	waiters   []*waiter     // FIFO; the head is the one that tries
	ready     chan struct{} // closed when the subscription is confirmed
	confirmed bool
	idleSince time.Time // when the last waiter left; zero while in use
}

type waiter struct {
	q    *waitQueue
	wake chan struct{} // capacity 1: a wake-up is never lost, never blocks

	// holderUntil bounds the lease of the hold the previous head left
	// with, when it left holding the lock; see head. Guarded by n.mu.
	holderUntil time.Time
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

// notifierLocked returns the notifier of client, creating it if needed.
// notifiers.mu must be held.
func notifierLocked(client redis.UniversalClient) *notifier {
	n := notifiers.m[client]
	if n == nil {
		n = &notifier{client: client, linger: notifyLinger, queues: make(map[string]*waitQueue), conns: make(map[string]*subConn)}
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

// join appends a waiter for the lock at key, announced on channel, to the
// queue of client's notifier, subscribing to the channel if needed. The
// subscription is confirmed when the waiter's queue's ready channel closes.
// It blocks only to look up the key's shard and to create a connection's
// PubSub, neither under a mutex: a client may panic there (a Ring does
// without a channel), and the panic then leaves nothing changed or locked.
func join(client redis.UniversalClient, key, channel string) (*notifier, *waiter) {
	node, nodeErr := shardOf(client, key) // before locking: it may block
	var ps *redis.PubSub                  // made for node, if it had no connection
	for {
		notifiers.mu.Lock()
		n := notifierLocked(client)
		// Taking n.mu before letting go of the registry keeps sweep from
		// retiring n in between.
		n.mu.Lock()
		notifiers.mu.Unlock()
		q := n.queues[channel]
		subscribe := (q == nil || q.conn == nil) && nodeErr == nil
		if subscribe && ps == nil && n.conns[node.addr] == nil {
			n.mu.Unlock()
			ps = newPubSub(client, node)
			continue // n may have changed meanwhile
		}
		if q == nil {
			q = &waitQueue{key: key, channel: channel, ready: make(chan struct{})}
			n.queues[channel] = q
		}
		var sc *subConn
		if subscribe {
			if n.conns[node.addr] == nil {
				n.openLocked(node.addr, ps)
				ps = nil
			}
			sc = n.subscribeLocked(q, n.conns[node.addr])
		}
		w := &waiter{q: q, wake: make(chan struct{}, 1)}
		q.waiters = append(q.waiters, w)
		q.idleSince = time.Time{}
		waiting.Add(1)
		n.mu.Unlock()
		if ps != nil {
			_ = ps.Close() // another join opened the connection first
		}
		n.send(sc)
		return n, w
	}
}

// shardOf returns the client to subscribe to the release channel of key
// through: the server the release script runs on, which publishes there.
// That is the master of the key's slot on a cluster (the channel shares the
// slot), the shard a Ring routes the key to (not the channel's, which may
// be another), and otherwise the notifier's client.
func shardOf(client redis.UniversalClient, key string) (shard, error) {
	switch c := client.(type) {
	case *redis.ClusterClient:
		node, err := c.MasterForKey(context.Background(), key)
		if err != nil {
			return shard{}, err
		}
		return shard{node, node.Options().Addr}, nil
	case *redis.Ring:
		node, err := c.GetShardClientForKey(key)
		if err != nil {
			return shard{}, err
		}
		return shard{node, node.Options().Addr}, nil
	}
	return shard{client: client}, nil
}

// shard is a client to subscribe through and its key in notifier.conns.
type shard struct {
	client redis.UniversalClient
	addr   string
}

// newPubSub returns a PubSub without channels on node: sharded on a
// cluster. It does not dial; its reader's Receive does. It must be called
// without a mutex held, as a client's Subscribe may panic.
func newPubSub(client redis.UniversalClient, node shard) *redis.PubSub {
	if _, ok := client.(*redis.ClusterClient); ok {
		return node.client.SSubscribe(context.Background())
	}
	return node.client.Subscribe(context.Background())
}

// openLocked adds a connection to addr through ps and starts its reader.
// n.mu must be held.
func (n *notifier) openLocked(addr string, ps *redis.PubSub) *subConn {
	_, sharded := n.client.(*redis.ClusterClient)
	sc := &subConn{addr: addr, ps: ps, sharded: sharded, stop: make(chan struct{}), done: make(chan struct{})}
	n.conns[addr] = sc
	go n.read(sc)
	return sc
}

// subscribeLocked subscribes q (SSUBSCRIBE on a cluster) through sc. n.mu
// must be held. The change is queued on the connection: if subscribeLocked
// returns it, the caller must call send with it after unlocking n.mu.
func (n *notifier) subscribeLocked(q *waitQueue, sc *subConn) *subConn {
	q.conn = sc
	sc.channels++
	return n.queueLocked(sc, subChange{sub: true, channels: []string{q.channel}})
}

// home subscribes the queue of channel through node's connection, opening
// it if needed, if the queue is there and ok says so (both under n.mu). As
// in join, the PubSub is created without n.mu.
func (n *notifier) home(channel string, node shard, ok func(*waitQueue) bool) {
	var ps *redis.PubSub
	defer func() {
		if ps != nil {
			_ = ps.Close()
		}
	}()
	for {
		n.mu.Lock()
		q := n.queues[channel]
		if q == nil || !ok(q) {
			n.mu.Unlock()
			return
		}
		sc := n.conns[node.addr]
		if sc == nil && ps == nil {
			n.mu.Unlock()
			ps = newPubSub(n.client, node)
			continue
		}
		if sc == nil {
			sc = n.openLocked(node.addr, ps)
			ps = nil
		}
		sc = n.subscribeLocked(q, sc)
		n.mu.Unlock()
		n.send(sc)
		return
	}
}

// queueLocked queues a subscription change on sc, and returns sc if the
// caller is to send it (no other goroutine is sending), nil otherwise.
// n.mu must be held.
func (n *notifier) queueLocked(sc *subConn, c subChange) *subConn {
	sc.pending = append(sc.pending, c)
	if sc.writing {
		return nil
	}
	sc.writing = true
	return sc
}

// send writes sc's queued subscription changes until none is left; sc may
// be nil. It runs without n.mu, so that waiters of other locks go on while a
// write waits for a connection. The writes do not wait for replies, which
// the reader receives. An error leaves a channel unconfirmed: its waiters
// poll until the reader reconnects and go-redis resubscribes.
func (n *notifier) send(sc *subConn) {
	if sc == nil {
		return
	}
	for {
		n.mu.Lock()
		changes := sc.pending
		sc.pending = nil
		if len(changes) == 0 {
			sc.writing = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		ctx := context.Background()
		for _, c := range changes {
			switch {
			case c.sub && sc.sharded:
				_ = sc.ps.SSubscribe(ctx, c.channels...)
			case c.sub:
				_ = sc.ps.Subscribe(ctx, c.channels...)
			case sc.sharded:
				_ = sc.ps.SUnsubscribe(ctx, c.channels...)
			default:
				_ = sc.ps.Unsubscribe(ctx, c.channels...)
			}
		}
	}
}

// head reports whether w is at the head of its queue and, if the head
// before it left holding the lock, the time by which that new hold expires
// at the latest unless renewed; it hands that time over only once.
func (n *notifier) head(w *waiter) (bool, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(w.q.waiters) == 0 || w.q.waiters[0] != w {
		return false, time.Time{}
	}
	until := w.holderUntil
	w.holderUntil = time.Time{}
	return true, until
}

// leave removes w from its queue; lease is the lease of the hold w leaves
// with, 0 if it leaves without the lock. A head that leaves wakes the next
// waiter: to try at once if it did not take the lock, or, if it did, to
// sleep no longer than the new hold's lease, since a try before its release
// could only fail and its key may expire without one.
func (n *notifier) leave(w *waiter, lease time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := w.q
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			waiting.Add(-1)
			if i == 0 && len(q.waiters) > 0 {
				next := q.waiters[0]
				if lease > 0 {
					next.holderUntil = time.Now().Add(lease)
				}
				next.signal()
			}
			break
		}
	}
	if len(q.waiters) == 0 {
		q.waiters = nil
		q.idleSince = time.Now()
		n.sweepByLocked(q.idleSince.Add(n.linger))
	}
}

// sweepByLocked makes sweep run at t or earlier. A sweep already due
// earlier is never postponed, so that steady contention on some locks
// does not keep the idle channels of others subscribed. n.mu must be held.
func (n *notifier) sweepByLocked(t time.Time) {
	if !n.sweepAt.IsZero() && !t.Before(n.sweepAt) {
		return
	}
	n.sweepAt = t
	n.timer.Reset(time.Until(t))
}

func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// read receives the messages of sc until sc.stop is closed.
func (n *notifier) read(sc *subConn) {
	defer close(sc.done)
	var retry *time.Timer
	pause := time.Millisecond
	for {
		msg, err := sc.ps.Receive(context.Background())
		select {
		case <-sc.stop:
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
			case <-sc.stop:
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
			switch m.Kind {
			case "subscribe", "ssubscribe":
				n.confirmed(m.Channel)
			case "sunsubscribe":
				n.moved(sc, m.Channel)
			}
		}
	}
}

// moved handles a shard channel that the server unsubscribed, as Redis
// does when the channel's slot moves to another shard: the head tries at
// once, and the channel is subscribed again where its slot now lives, once
// go-redis's slot map says so (it reloads in the background; moved waits for
// that, bounded by movedWait, or leaves the waiters to poll). An
// unsubscription the notifier asked for finds no queue on sc and is ignored.
func (n *notifier) moved(sc *subConn, channel string) {
	n.mu.Lock()
	q := n.queues[channel]
	if q == nil || q.conn != sc {
		n.mu.Unlock()
		return
	}
	q.conn = nil
	sc.channels--
	if len(q.waiters) > 0 {
		q.waiters[0].signal()
	}
	key := q.key
	n.mu.Unlock()

	cc, ok := n.client.(*redis.ClusterClient)
	if !ok {
		return
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(movedWait)
	for {
		// Ask again each time: the node a reload asks may not have learned
		// of the move yet.
		cc.ReloadState(context.Background())
		node, err := shardOf(n.client, key)
		if err == nil && node.addr != sc.addr {
			n.home(channel, node, func(q *waitQueue) bool { return q.conn == nil })
			return
		}
		if time.Now().After(deadline) {
			return // the waiters poll until the next one joins
		}
		select {
		case <-sc.stop:
			return
		case <-tick.C:
		}
	}
}

// movedWait bounds how long a reader waits for the slot map to follow a
// moved channel; messages for its other channels wait as long.
const movedWait = 3 * time.Second

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

// sweep unsubscribes the channels idle for n.linger and closes the
// connections left without channels, waiting for their readers. Once it has
// no queue left, the notifier leaves the registry. It runs on n.timer, and
// sets it again for the earliest channel still lingering.
func (n *notifier) sweep() {
	notifiers.mu.Lock()
	n.mu.Lock()
	n.sweepAt = time.Time{}
	now := time.Now()
	var next time.Duration
	gone := make(map[*subConn][]string)
	for ch, q := range n.queues {
		if len(q.waiters) > 0 {
			continue
		}
		if idle := now.Sub(q.idleSince); idle < n.linger {
			if next == 0 || n.linger-idle < next {
				next = n.linger - idle
			}
			continue
		}
		delete(n.queues, ch)
		if q.conn != nil {
			q.conn.channels--
			gone[q.conn] = append(gone[q.conn], ch)
		}
	}
	var closing, sending []*subConn
	for addr, sc := range n.conns {
		switch {
		case sc.channels == 0:
			delete(n.conns, addr)
			closing = append(closing, sc)
		case len(gone[sc]) > 0:
			if sc := n.queueLocked(sc, subChange{channels: gone[sc]}); sc != nil {
				sending = append(sending, sc)
			}
		}
	}
	if len(n.queues) == 0 && len(n.conns) == 0 && notifiers.m[n.client] == n {
		delete(notifiers.m, n.client)
	}
	if next > 0 {
		n.sweepByLocked(now.Add(next))
	}
	n.mu.Unlock()
	notifiers.mu.Unlock()
	for _, sc := range sending {
		n.send(sc)
	}
	for _, sc := range closing {
		close(sc.stop)
		_ = sc.ps.Close()
		<-sc.done
	}
}
