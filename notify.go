package redislock

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A notifier wakes the waiters of one Redis client. It owns one pub/sub
// connection (one per shard on a cluster or a Ring), shared by every waiter
// of every lock on that client, and subscribes to a lock's release channel
// only while someone in this process waits for that lock (and n.linger
// after, to spare a resubscription when contention goes on). Waiters of one
// lock queue in FIFO order and only the head of the queue tries to acquire;
// a release message wakes the head.
//
// On a cluster or a Ring a channel must be subscribed on the server that the
// lock's key lives on, and that changes: a slot moves, a master is replaced.
// The readers notice (the server unsubscribes a moved slot's channels, a
// connection fails) and hand the channels to a relocating goroutine, which
// asks where they live now and subscribes them there.
type notifier struct {
	client redis.UniversalClient
	routed bool          // a cluster or a Ring: channels live on several servers
	linger time.Duration // notifyLinger when n was made

	mu      sync.Mutex
	queues  map[string]*waitQueue // by channel
	conns   map[string]*subConn   // by shard address; "" on a single server
	timer   *time.Timer           // runs sweep
	sweepAt time.Time             // when timer fires; zero while it is stopped

	// The relocating goroutine runs while some queue with waiters is not
	// subscribed, or is subscribed through a failed connection; see
	// relocate. kick wakes it (capacity 1); done closes when it returns.
	relocating bool
	kick       chan struct{}
	relocDone  chan struct{}
}

// subConn is one pub/sub connection and its reader. On a cluster there is
// one per shard master, subscribed with SSUBSCRIBE to the channels of the
// shard's slots; on a Ring one per shard; elsewhere one in all.
type subConn struct {
	addr     string
	ps       *redis.PubSub
	sharded  bool
	channels int           // channels subscribed through it; guarded by n.mu
	stop     chan struct{} // closed to stop the reader
	done     chan struct{} // closed when the reader has returned

	// Subscription changes wait in pending, in the order the queues
	// changed, for a goroutine that sends them without n.mu (a send may have
	// to dial). writing says one is at it. Guarded by n.mu.
	pending []subChange
	writing bool

	// Guarded by n.mu too. down: the reader's last receive failed on the
	// network (go-redis redials at the next). unsubs counts, per channel,
	// the SUNSUBSCRIBEs sent on the current connection whose reply has not
	// come, so that the server's own unsubscriptions (a moved slot) are
	// told from the notifier's. resub: the channels must be subscribed again
	// one by one (go-redis resubscribes all in one command, which a cluster
	// refuses when they span slots).
	down   bool
	unsubs map[string]int
	resub  bool
}

// subChange is a SUBSCRIBE (sub) or UNSUBSCRIBE of channels, or their
// sharded forms, waiting to be sent. A sharded change has one channel, since
// a cluster refuses one whose channels span slots.
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
	// shareUntil: a release found others than this process kept waiting;
	// until then, releases let them in (see handoff.go).
	shareUntil time.Time

	// After the server unsubscribed the channel (its slot moved), the
	// notifier does not subscribe it at avoid again before avoidUntil: the
	// slot map may not show the move yet.
	avoid      string
	avoidUntil time.Time
}

type waiter struct {
	n     *notifier
	q     *waitQueue
	wake  chan struct{} // capacity 1: a wake-up is never lost, never blocks
	owner string        // a release naming this owner wakes this waiter
	lock  *Lock         // the Lock that waits

	// A release may hand the lock to the waiter (see handoff.go). Guarded
	// by gmu, which is taken after n.mu and before the Lock's mu.
	gmu       sync.Mutex
	state     heirState
	granted   *hold     // the hold handed over, in state heirGranted
	notBefore time.Time // no attempt before, after a release that let others in

	// holderUntil bounds the lease of the hold the previous head left
	// with, when it left holding the lock; see head. Guarded by n.mu.
	holderUntil time.Time
}

// notifyLinger is how long a release channel stays subscribed after its last
// waiter left, and so how long the connection stays open after the last one
// (in nanoseconds; tests shorten it).
var notifyLinger atomic.Int64

func init() { notifyLinger.Store(int64(time.Second)) }

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
		n = &notifier{
			client: client,
			linger: time.Duration(notifyLinger.Load()),
			queues: make(map[string]*waitQueue),
			conns:  make(map[string]*subConn),
			kick:   make(chan struct{}, 1),
		}
		switch client.(type) {
		case *redis.ClusterClient, *redis.Ring:
			n.routed = true
		}
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

// join appends a waiter of l, for the lock at its key, announced on its
// channel, to the queue of its client's notifier, subscribing to the
// channel if needed, or subscribing it again where the client now routes
// the key. The
// subscription is confirmed when the waiter's queue's ready channel closes.
// It blocks only to look up the key's shard and to create a connection's
// PubSub, neither under a mutex: a client may panic there (a Ring does
// without a channel), and the panic then leaves nothing changed or locked.
func join(l *Lock) (*notifier, *waiter) {
	client, key, channel := l.client, l.key, l.channel
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
		home := nodeErr == nil && (q == nil || n.movableLocked(q, q.conn, node.addr))
		if home && ps == nil && n.conns[node.addr] == nil {
			n.mu.Unlock()
			ps = newPubSub(client, node)
			continue // n may have changed meanwhile
		}
		if q == nil {
			q = &waitQueue{key: key, channel: channel, ready: make(chan struct{})}
			n.queues[channel] = q
		}
		var send []*subConn
		if home {
			sc := n.conns[node.addr]
			if sc == nil {
				sc = n.openLocked(node.addr, ps)
				ps = nil
			}
			send = n.moveLocked(q, sc)
		}
		w := &waiter{n: n, q: q, wake: make(chan struct{}, 1), owner: l.owner, lock: l}
		q.waiters = append(q.waiters, w)
		q.idleSince = time.Time{}
		waiting.Add(1)
		if n.routed && (q.conn == nil || q.conn.down) {
			n.kickLocked() // relocate finds where it lives now
		}
		n.mu.Unlock()
		if ps != nil {
			_ = ps.Close() // another join opened the connection first
		}
		for _, sc := range send {
			n.send(sc)
		}
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

// movableLocked reports whether q, subscribed through from (nil if not
// subscribed), should be subscribed through the connection to addr, where
// the client now routes its key: it is not subscribed, or from leads
// elsewhere. A channel that the server at addr unsubscribed is not
// subscribed there again for movedWait. n.mu must be held.
func (n *notifier) movableLocked(q *waitQueue, from *subConn, addr string) bool {
	if from != nil {
		return from.addr != addr
	}
	return addr != q.avoid || !time.Now().Before(q.avoidUntil)
}

// moveLocked subscribes q through sc, unsubscribing it from its current
// connection unless that one is down (a connection that failed). n.mu must
// be held. It returns the connections whose changes the caller must send
// after unlocking n.mu.
func (n *notifier) moveLocked(q *waitQueue, sc *subConn) []*subConn {
	var send []*subConn
	if old := q.conn; old != nil {
		n.dropLocked(q)
		if !old.down {
			if old := n.queueLocked(old, subChange{channels: []string{q.channel}}); old != nil {
				send = append(send, old)
			}
		}
	}
	q.conn = sc
	q.avoid = ""
	sc.channels++
	if sc := n.queueLocked(sc, subChange{sub: true, channels: []string{q.channel}}); sc != nil {
		send = append(send, sc)
	}
	return send
}

// dropLocked detaches q from its connection, which the next sweep closes if
// no channel is left on it. n.mu must be held.
func (n *notifier) dropLocked(q *waitQueue) {
	sc := q.conn
	q.conn = nil
	sc.channels--
	if sc.channels == 0 {
		n.sweepByLocked(time.Now().Add(n.linger))
	}
}

// home subscribes the queue of channel through node's connection, opening
// it if needed, if the queue is still there and subscribed through from,
// has waiters and may move to node (movableLocked). As in join, the PubSub
// is created without n.mu.
func (n *notifier) home(channel string, from *subConn, node shard) {
	var ps *redis.PubSub
	defer func() {
		if ps != nil {
			_ = ps.Close()
		}
	}()
	for {
		n.mu.Lock()
		q := n.queues[channel]
		if q == nil || q.conn != from || len(q.waiters) == 0 || !n.movableLocked(q, from, node.addr) {
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
		send := n.moveLocked(q, sc)
		n.mu.Unlock()
		for _, sc := range send {
			n.send(sc)
		}
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
		if sc.sharded {
			// Counted before the write, so that the reply cannot come first.
			for _, c := range changes {
				if !c.sub {
					n.countUnsubLocked(sc, c.channels[0], 1)
				}
			}
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
				if err := sc.ps.SUnsubscribe(ctx, c.channels...); err != nil {
					// Perhaps never sent: expect no reply.
					n.mu.Lock()
					n.countUnsubLocked(sc, c.channels[0], -1)
					n.mu.Unlock()
				}
			default:
				_ = sc.ps.Unsubscribe(ctx, c.channels...)
			}
		}
	}
}

// countUnsubLocked adds d to the count of SUNSUBSCRIBEs of channel that
// await their reply on sc. n.mu must be held.
func (n *notifier) countUnsubLocked(sc *subConn, channel string, d int) {
	c := sc.unsubs[channel] + d
	switch {
	case c > 0:
		if sc.unsubs == nil {
			sc.unsubs = make(map[string]int)
		}
		sc.unsubs[channel] = c
	default:
		delete(sc.unsubs, channel)
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
// could only fail and its key may expire without one. A negative lease
// wakes nobody: a fair lock's waiters each try on their own.
func (n *notifier) leave(w *waiter, lease time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := w.q
	for i, x := range q.waiters {
		if x == w {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			waiting.Add(-1)
			if i == 0 && len(q.waiters) > 0 && lease >= 0 {
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

// read receives the messages of sc until sc.stop is closed. It never
// waits for anything but the connection: what takes time (finding where a
// channel lives now) is left to relocate.
func (n *notifier) read(sc *subConn) {
	defer close(sc.done)
	var retry *time.Timer
	pause := time.Millisecond
	down := false
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
		if err != nil && !isServerError(err) {
			// go-redis redials and resubscribes at the next Receive, unless
			// the client was closed: then no waiter can succeed, and their
			// own requests tell them so. Releases announced meanwhile go
			// unheard; the confirmations of the resubscription wake the
			// heads to try again.
			if !down {
				down = true
				n.connDown(sc)
			}
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
		if down {
			down = false
			n.connUp(sc)
		}
		if err != nil {
			n.refused(sc, err)
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			n.released(m.Channel, m.Payload)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				n.confirmed(sc, m.Channel)
			case "sunsubscribe":
				n.unsubscribed(sc, m.Channel)
			}
		}
	}
}

// connDown records that sc's connection failed: the replies it awaited are
// lost with it, and on a cluster or a Ring its channels may have to move
// (a killed master's slots go to a promoted replica, a Ring drops a dead
// shard), which relocate finds out.
func (n *notifier) connDown(sc *subConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sc.down = true
	sc.unsubs = nil
	if n.routed && sc.channels > 0 {
		n.kickLocked()
	}
}

func (n *notifier) connUp(sc *subConn) {
	n.mu.Lock()
	defer n.mu.Unlock()
	sc.down = false
}

// unsubscribed handles the reply to a SUNSUBSCRIBE on sc, or a shard
// channel that the server unsubscribed on its own, as Redis does when the
// channel's slot moves to another shard. The notifier's own are told apart
// by their count; for the server's, the head tries at once and relocate
// subscribes the channel where its slot now lives.
func (n *notifier) unsubscribed(sc *subConn, channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if sc.unsubs[channel] > 0 {
		n.countUnsubLocked(sc, channel, -1)
		return
	}
	if q := n.queues[channel]; q != nil && q.conn == sc {
		n.evictLocked(q)
	}
}

// refused handles an error reply on a shard connection. MOVED answers a
// SSUBSCRIBE or SUNSUBSCRIBE of a channel whose slot the node no longer
// serves: the channels of that slot are not subscribed there, and no other
// reply will come for them. CROSSSLOT answers go-redis resubscribing all
// channels in one command after a reconnect: they are subscribed one by one.
func (n *notifier) refused(sc *subConn, err error) {
	if !sc.sharded {
		return
	}
	msg := err.Error()
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case strings.HasPrefix(msg, "MOVED "):
		f := strings.Fields(msg)
		if len(f) < 2 {
			return
		}
		slot, perr := strconv.Atoi(f[1])
		if perr != nil {
			return
		}
		for ch := range sc.unsubs {
			if int(keySlot(ch)) == slot {
				delete(sc.unsubs, ch)
			}
		}
		for _, q := range n.queues {
			if q.conn == sc && int(keySlot(q.channel)) == slot {
				n.evictLocked(q)
			}
		}
	case strings.HasPrefix(msg, "CROSSSLOT"):
		sc.resub = true
		n.kickLocked()
	}
}

// evictLocked detaches q from its connection, whose server does not have
// it subscribed, and has relocate find its new home. n.mu must be held.
func (n *notifier) evictLocked(q *waitQueue) {
	q.avoid, q.avoidUntil = q.conn.addr, time.Now().Add(movedWait)
	n.dropLocked(q)
	if len(q.waiters) > 0 {
		q.waiters[0].signal()
		n.kickLocked()
	}
}

// movedWait is how long a channel that a server unsubscribed is not
// subscribed there again, for the slot map to show where it went.
const movedWait = 3 * time.Second

// kickLocked starts relocate, or wakes it if it runs. n.mu must be held.
func (n *notifier) kickLocked() {
	if !n.relocating {
		n.relocating = true
		n.relocDone = make(chan struct{})
		go n.relocate(n.relocDone)
		return
	}
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Bounds of relocate's pause between rounds: short at first, since a moved
// slot shows in the slot map within milliseconds, then long enough to keep
// its requests few while a failover takes seconds.
const (
	relocateMin = 10 * time.Millisecond
	relocateMax = 250 * time.Millisecond
)

// relocation is a queue to subscribe elsewhere: one not subscribed (from
// nil) or subscribed through a connection that failed.
type relocation struct {
	key, channel string
	from         *subConn
}

// relocate subscribes, one round after another, the queues with waiters
// that are not subscribed, or are subscribed through a failed connection,
// where the client now routes their keys, reloading a cluster's slot map
// each round (go-redis reloads it by itself only on MOVED replies and once
// a minute), and subscribes one by one the channels of connections marked
// resub. It returns once nothing is left to do; kickLocked starts it again.
// It runs without n.mu while it asks the client, and is waited for by
// the sweep that retires n.
func (n *notifier) relocate(done chan struct{}) {
	defer close(done)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	pause := relocateMin
	for {
		n.mu.Lock()
		work, resub := n.relocationsLocked()
		if len(work) == 0 && len(resub) == 0 {
			n.relocating = false
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		for _, sc := range resub {
			n.send(sc)
		}
		if len(work) > 0 {
			if cc, ok := n.client.(*redis.ClusterClient); ok {
				cc.ReloadState(context.Background()) // in the background: the next round sees it
			}
			for _, r := range work {
				if node, err := shardOf(n.client, r.key); err == nil {
					n.home(r.channel, r.from, node)
				}
			}
		}
		if timer == nil {
			timer = time.NewTimer(pause)
		} else {
			timer.Reset(pause)
		}
		select {
		case <-n.kick:
			timer.Stop()
			pause = relocateMin
		case <-timer.C:
			pause = min(2*pause, relocateMax)
		}
	}
}

// relocationsLocked returns relocate's work: the queues to relocate, and
// the connections to send after queueing their channels' subscriptions
// again one by one. n.mu must be held.
func (n *notifier) relocationsLocked() ([]relocation, []*subConn) {
	var work []relocation
	for ch, q := range n.queues {
		if len(q.waiters) > 0 && (q.conn == nil || q.conn.down) {
			work = append(work, relocation{key: q.key, channel: ch, from: q.conn})
		}
	}
	var resub []*subConn
	for _, sc := range n.conns {
		if !sc.resub {
			continue
		}
		sc.resub = false
		var send *subConn
		for ch, q := range n.queues {
			if q.conn == sc {
				if s := n.queueLocked(sc, subChange{sub: true, channels: []string{ch}}); s != nil {
					send = s
				}
			}
		}
		if send != nil {
			resub = append(resub, send)
		}
	}
	return work, resub
}

// yield moves w, at the head of its queue, behind the other waiters, and
// wakes the new head.
func (n *notifier) yield(w *waiter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := w.q
	if len(q.waiters) < 2 || q.waiters[0] != w {
		return
	}
	copy(q.waiters, q.waiters[1:])
	q.waiters[len(q.waiters)-1] = w
	q.waiters[0].signal()
}

// released wakes the head waiter of channel, or the waiter of owner next
// when a fair lock's release names one.
func (n *notifier) released(channel, next string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[channel]
	if q == nil || len(q.waiters) == 0 {
		return
	}
	if next == "" {
		q.waiters[0].signal()
		return
	}
	// A fair lock's release names the waiter to try, wherever it waits.
	for _, w := range q.waiters {
		if w.owner == next {
			w.signal()
			return
		}
	}
}

// confirmed marks channel's subscription through sc as confirmed. A
// confirmation after a reconnect or a move also wakes the head, in case a
// release went unheard meanwhile. One from another connection (an old one
// resubscribing) confirms nothing.
func (n *notifier) confirmed(sc *subConn, channel string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[channel]
	if q == nil || q.conn != sc {
		return
	}
	if !q.confirmed {
		q.confirmed = true
		close(q.ready)
	} else if len(q.waiters) > 0 {
		q.waiters[0].signal()
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
			var send *subConn
			if sc.sharded {
				for _, ch := range gone[sc] {
					if s := n.queueLocked(sc, subChange{channels: []string{ch}}); s != nil {
						send = s
					}
				}
			} else {
				send = n.queueLocked(sc, subChange{channels: gone[sc]})
			}
			if send != nil {
				sending = append(sending, send)
			}
		}
	}
	var relocating chan struct{}
	if len(n.queues) == 0 && len(n.conns) == 0 && notifiers.m[n.client] == n {
		delete(notifiers.m, n.client)
		if n.relocating {
			relocating = n.relocDone // it finds nothing to do and returns
			n.kickLocked()
		}
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
	if relocating != nil {
		<-relocating
	}
}
