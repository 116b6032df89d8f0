package redislock

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A heartbeat renews every held lock of one Redis client. It has no
// goroutine of its own: a timer starts a round when the earliest renewal is
// due, and the round sends every renewal due by then, each in a flight of
// its lane.
//
// A lane is what renewals that share a round trip must have in common: the
// server (on a cluster, the master of the key's slot; on a ring, the shard)
// and the replica acknowledgement they wait for, if any. Plain renewals
// never share a pipeline with a WAIT. A lane has at most one flight at a
// time; its renewals that come due meanwhile are parked and leave together
// as soon as the flight lands. So a slow lane (a WAIT for a paused replica,
// a dead or blackholed node) delays only its own renewals. Within a flight,
// renewals that share a renewal script and, on a cluster, a hash slot share
// script calls, up to extendBatch per call.
//
// A flight runs on the round's goroutine (the first lane's) or on one of its
// own (the others') and ends on its own bounded context; nothing waits for
// it, and a hold removed meanwhile is simply not renewed again. Without
// holds the heartbeat stays registered for idleLinger, so a client that
// locks again soon reuses it, and then leaves the registry, so that it does
// not keep a closed client from being collected.
type heartbeat struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // client, if it is one
	ring    *redis.Ring          // client, if it is one
	batch   int                  // holds per script call

	mu     sync.Mutex
	queue  holdQueue        // holds waiting for their renewal, earliest first
	n      int              // holds registered: queued, parked or in flight
	flying map[lane][]*hold // lanes with a flight under way, and the holds parked behind it
	timer  *time.Timer
}

// A lane is a class of renewals that may share a flight; see heartbeat.
type lane struct {
	node     string        // address of the cluster master or ring shard; "" otherwise
	replicas int           // WAIT for this many replicas; 0: no WAIT
	timeout  time.Duration // the WAIT's timeout
}

// A flight is the renewals of one lane sent together.
type flight struct {
	lane  lane
	node  redis.UniversalClient // where its pipeline goes first
	holds []*hold
}

// extendBatch is how many renewals one script call carries: on a cluster,
// of keys that share a hash slot; on a ring, of keys on one shard.
const extendBatch = 100

// maxPasses bounds the pipelines one flight sends to a node: the first,
// and those that resend what a server asked to get differently (the
// script's source, one key per call, another node).
const maxPasses = 4

// idleLinger is how long a heartbeat without holds stays registered.
var idleLinger = time.Minute

// maxRound is the deadline of one flight's context. go-redis bounds its
// socket I/O by it only with ContextTimeoutEnabled; otherwise its own
// ReadTimeout and retries do. Loss detection does not depend on either: it
// runs on each hold's own timer.
const maxRound = DefaultReleaseTimeout

var heartbeats struct {
	mu sync.Mutex
	m  map[redis.UniversalClient]*heartbeat
}

// schedule queues h for renewals through client, the first at renewAt.
// It must be called before h is published to other goroutines.
func schedule(client redis.UniversalClient, h *hold, renewAt time.Time) {
	heartbeats.mu.Lock()
	defer heartbeats.mu.Unlock()
	s := heartbeats.m[client]
	if s == nil {
		s = newHeartbeat(client)
		if heartbeats.m == nil {
			heartbeats.m = make(map[redis.UniversalClient]*heartbeat)
		}
		heartbeats.m[client] = s
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h.hb, h.renewAt, h.removed = s, monoTime(renewAt), false
	heap.Push(&s.queue, h)
	s.n++
	if h.index == 0 {
		s.timer.Reset(time.Until(renewAt))
	}
}

func newHeartbeat(client redis.UniversalClient) *heartbeat {
	s := &heartbeat{client: client, batch: 1, flying: make(map[lane][]*hold)}
	// A script call may carry several keys only where they all reach the
	// server it is sent to.
	switch c := client.(type) {
	case *redis.Client:
		s.batch = extendBatch
	case *redis.ClusterClient:
		s.cluster, s.batch = c, extendBatch
	case *redis.Ring:
		s.ring, s.batch = c, extendBatch
	}
	s.timer = time.AfterFunc(time.Hour, s.round)
	s.timer.Stop()
	return s
}

// remove stops renewing h. It does not block on I/O: a renewal of h under
// way lands later, and its answer is ignored.
func (s *heartbeat) remove(h *hold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.removed {
		return
	}
	h.removed = true
	head := h.index == 0
	if h.index >= 0 {
		heap.Remove(&s.queue, int(h.index))
	}
	s.n--
	if head || s.n == 0 {
		s.armLocked()
	}
}

// armLocked sets s.timer for the earliest queued renewal, or for the end of
// the idle linger. s.mu must be held.
func (s *heartbeat) armLocked() {
	switch {
	case len(s.queue) > 0:
		s.timer.Reset(time.Duration(s.queue[0].renewAt - monoTime(time.Now())))
	case s.n == 0 && len(s.flying) == 0:
		s.timer.Reset(idleLinger)
	default:
		s.timer.Stop() // the flights under way arm it when they land
	}
}

// round takes the renewals that are due, or soon will be, and sends them;
// it runs on s.timer.
func (s *heartbeat) round() {
	s.mu.Lock()
	if s.n == 0 && len(s.flying) == 0 {
		s.mu.Unlock()
		s.retire()
		return
	}
	var due []*hold
	if now := monoTime(time.Now()); len(s.queue) > 0 && s.queue[0].renewAt <= now {
		// Renewing a little early costs nothing and lets holds whose
		// renewals fall close together share one round trip.
		soon := now + int64(s.queue[0].lock.opts.heartbeat/8)
		for len(s.queue) > 0 && s.queue[0].renewAt <= soon {
			due = append(due, heap.Pop(&s.queue).(*hold))
		}
	}
	s.armLocked()
	s.mu.Unlock()
	s.dispatch(due)
}

// retire removes an idle heartbeat from the registry; it runs on s.timer
// idleLinger after the last hold went.
func (s *heartbeat) retire() {
	heartbeats.mu.Lock()
	defer heartbeats.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 && len(s.flying) == 0 && heartbeats.m[s.client] == s {
		delete(heartbeats.m, s.client)
	}
}

// dispatch sends due, one flight per lane, the first on this goroutine and
// the others on goroutines of their own; each goroutine then sends what was
// parked behind its flight, until its lane has nothing left.
func (s *heartbeat) dispatch(due []*hold) {
	for len(due) > 0 {
		fs := s.board(due)
		if len(fs) == 0 {
			return
		}
		for _, f := range fs[1:] {
			go func() { s.dispatch(s.fly(f)) }()
		}
		due = s.fly(fs[0])
	}
}

// board sorts due into flights by lane. It returns a flight for each lane
// that has none under way, and parks the other holds behind their lane's.
// Holds with no known node are queued to be tried again.
func (s *heartbeat) board(due []*hold) []flight {
	fs, unrouted := s.route(due)
	s.mu.Lock()
	defer s.mu.Unlock()
	var ready []flight
	for _, f := range fs {
		live := f.holds[:0]
		for _, h := range f.holds {
			if !h.removed {
				live = append(live, h)
			}
		}
		if len(live) == 0 {
			continue
		}
		if parked, busy := s.flying[f.lane]; busy {
			s.flying[f.lane] = append(parked, live...)
			continue
		}
		s.flying[f.lane] = nil
		f.holds = live
		ready = append(ready, f)
	}
	if len(unrouted) > 0 {
		now := time.Now()
		for _, h := range unrouted {
			if !h.removed {
				h.renewAt = monoTime(now.Add(retryDelay(h)))
				heap.Push(&s.queue, h)
			}
		}
		s.armLocked()
	}
	return ready
}

// route sorts due into flights by lane. Holds whose node is unknown (a
// cluster client without a slot map, a ring without a live shard) come back
// apart.
func (s *heartbeat) route(due []*hold) (fs []flight, unrouted []*hold) {
	var masters map[uint16]*redis.Client // by slot; nil: unknown
	ctx := context.Background()
	if s.cluster != nil {
		masters = make(map[uint16]*redis.Client)
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, maxRound) // for a first load of the slot map
		defer cancel()
	}
	index := make(map[lane]int, 2)
	for _, h := range due {
		ln := lane{replicas: h.lock.opts.minReplicas}
		if ln.replicas > 0 {
			ln.timeout = h.lock.opts.replicaTimeout
		}
		node := s.client
		switch {
		case s.cluster != nil:
			slot := keySlot(h.lock.key)
			m, ok := masters[slot]
			if !ok {
				m, _ = s.cluster.MasterForKey(ctx, h.lock.key)
				masters[slot] = m
			}
			if m == nil {
				unrouted = append(unrouted, h)
				continue
			}
			ln.node = m.Options().Addr
			if ln.replicas > 0 {
				// WAIT counts the replicas that have the writes made on its
				// own connection: send both to the master. Plain renewals
				// go through the cluster client, which follows redirections.
				node = m
			}
		case s.ring != nil:
			shard, err := s.ring.GetShardClientForKey(h.lock.key)
			if err != nil {
				unrouted = append(unrouted, h)
				continue
			}
			ln.node, node = shard.Options().Addr, shard
		}
		i, ok := index[ln]
		if !ok {
			i = len(fs)
			index[ln] = i
			fs = append(fs, flight{lane: ln, node: node})
		}
		fs[i].holds = append(fs[i].holds, h)
	}
	if len(unrouted) > 0 && s.cluster != nil {
		s.cluster.ReloadState(ctx)
	}
	return fs, unrouted
}

// retryDelay is how soon a failed renewal of h is tried again: well before
// its deadline, since Redis may recover in time.
func retryDelay(h *hold) time.Duration {
	return min(h.lock.opts.heartbeat, h.lock.validity(h.lock.opts.ttl)/8)
}

// fly sends the renewals of f, queues its holds again, tells their Locks,
// and returns the holds that were parked behind it.
func (s *heartbeat) fly(f flight) (parked []*hold) {
	start := time.Now()
	results, err := s.renew(f)
	took := time.Since(start)

	s.mu.Lock()
	now := time.Now()
	for i, h := range f.holds {
		if h.removed {
			results[i] = renewGone // nobody to tell
			continue
		}
		switch results[i] {
		case renewOK:
			h.renewAt = monoTime(start.Add(h.lock.opts.heartbeat))
		case renewFailed:
			h.renewAt = monoTime(now.Add(retryDelay(h)))
		case renewRefused:
			h.removed = true
			s.n--
			continue
		}
		heap.Push(&s.queue, h)
	}
	parked = s.flying[f.lane]
	delete(s.flying, f.lane)
	s.armLocked()
	s.mu.Unlock()
	// Tell the Locks after the queue is consistent, and without s.mu: a Lock
	// reporting loss may call remove.
	for i, h := range f.holds {
		switch results[i] {
		case renewOK:
			h.lock.renewed(h, start)
		case renewRefused:
			h.lock.renewRefused(h)
		case renewFailed:
			h.lock.renewFailed(h, err)
		}
	}
	observeRenewals(f.holds, results, took)
	return parked
}

type renewResult uint8

const (
	renewFailed renewResult = iota // no answer, or not acknowledged: try again
	renewGone                      // removed while in flight: nobody to tell
	renewOK
	renewRefused // the owner no longer holds the key
)

// A call is one script call of a flight.
type call struct {
	at     int     // index of holds[0] in the flight
	holds  []*hold // sharing a renewal script and, on a cluster, a slot
	node   redis.UniversalClient
	source bool // EVAL: the server lacks the script
	asking bool // precede with ASKING: the node is importing the slot
	cmd    *redis.Cmd
}

// A trip is the state of one flight's requests.
type trip struct {
	ctx     context.Context
	lane    lane
	results []renewResult                    // by index in the flight
	masters map[string]redis.UniversalClient // redirection targets, by address
	trouble bool                             // a request failed: the slot map may be stale
	err     error                            // the last failure, for the logs
}

// renew sends the renewals of f and returns a result per hold of f.holds,
// which it reorders so that each script call's holds are adjacent.
func (s *heartbeat) renew(f flight) ([]renewResult, error) {
	// A renewal answered after a whole lease is of no use to anyone.
	timeout := maxRound
	for _, h := range f.holds {
		timeout = min(timeout, h.lock.validity(h.lock.opts.ttl))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t := &trip{ctx: ctx, lane: f.lane, results: make([]renewResult, len(f.holds))}
	calls := s.calls(f)
	for pass := 0; len(calls) > 0 && pass < maxPasses; pass++ {
		var again []call
		for len(calls) > 0 {
			// One pipeline per node, so that a WAIT follows the writes it
			// counts; calls redirected elsewhere go in the next.
			node, mine := calls[0].node, calls[:0:0]
			rest := calls[:0]
			for _, c := range calls {
				if c.node == node {
					mine = append(mine, c)
				} else {
					rest = append(rest, c)
				}
			}
			again = s.exec(t, node, mine, again)
			calls = rest
		}
		calls = again
	}
	if len(calls) > 0 {
		t.trouble = true
	}
	if t.trouble && s.cluster != nil {
		// go-redis reloads its slot map on MOVED and every minute; a dead or
		// demoted master, or a cluster that is down, sends no MOVED.
		s.cluster.ReloadState(ctx)
	}
	return t.results, t.err
}

// calls splits f into script calls: holds that share a renewal script and,
// on a cluster, a hash slot, up to s.batch per call. It reorders f.holds so
// that each call's holds are adjacent.
func (s *heartbeat) calls(f flight) []call {
	type group struct {
		script *redis.Script
		slot   uint16
	}
	order := make(map[group]int, 1)
	var groups [][]*hold
	for _, h := range f.holds {
		g := group{script: h.renewScript()}
		if s.cluster != nil {
			g.slot = keySlot(h.lock.key)
		}
		i, ok := order[g]
		if !ok {
			i = len(groups)
			order[g] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], h)
	}
	var calls []call
	at := 0
	for _, g := range groups {
		for lo := 0; lo < len(g); lo += s.batch {
			part := g[lo:min(lo+s.batch, len(g))]
			copy(f.holds[at:], part)
			calls = append(calls, call{at: at, holds: f.holds[at : at+len(part)], node: f.node})
			at += len(part)
		}
	}
	return calls
}

// exec sends calls to node in one pipeline, ending in WAIT if the lane asks
// for replicas, records the answers in t.results, and returns again with
// the calls to send once more appended.
func (s *heartbeat) exec(t *trip, node redis.UniversalClient, calls []call, again []call) []call {
	ctx := t.ctx
	pipe := node.Pipeline()
	for i := range calls {
		c := &calls[i]
		if c.asking {
			pipe.Do(ctx, "asking")
		}
		keys := make([]string, len(c.holds))
		args := make([]any, 0, 2*len(c.holds))
		for j, h := range c.holds {
			keys[j] = h.lock.key
			args = h.appendRenewArgs(args)
		}
		renew := c.holds[0].renewScript()
		if c.source {
			c.cmd = renew.Eval(ctx, pipe, keys, args...)
		} else {
			c.cmd = renew.EvalSha(ctx, pipe, keys, args...)
		}
	}
	var wait *redis.Cmd
	if t.lane.replicas > 0 {
		wait = pipe.Do(ctx, "wait", t.lane.replicas, t.lane.timeout.Milliseconds())
	}
	_, _ = pipe.Exec(ctx)
	acked := int64(0)
	if wait != nil {
		acked, _ = wait.Int64()
		if acked < int64(t.lane.replicas) {
			t.err = fmt.Errorf("%w: %d of %d replicas acknowledged within %v", ErrNotReplicated, acked, t.lane.replicas, t.lane.timeout)
		}
	}
	for _, c := range calls {
		vals, err := c.cmd.Int64Slice()
		if err != nil {
			if !isNoScript(err) {
				t.trouble = true
				t.err = err
			}
			again = s.retry(t, c, err, again)
			continue // renewFailed, unless sent again
		}
		for j, v := range vals[:min(len(vals), len(c.holds))] {
			switch {
			case v != 1:
				t.results[c.at+j] = renewRefused
			case int64(t.lane.replicas) > acked:
				// Renewed on the master only: it does not count.
			default:
				t.results[c.at+j] = renewOK
			}
		}
	}
	return again
}

// retry returns again with what to send instead of c, which failed with
// err: the script's source where the server lacks it; one key per call
// where a call of several met a slot in migration (TRYAGAIN); and, for a
// lane that must WAIT where the writes were made, the same call to the
// master that a redirection names, since the master's own client does not
// follow redirections. Other failures are not retried within the flight.
func (s *heartbeat) retry(t *trip, c call, err error, again []call) []call {
	switch {
	case isNoScript(err) && !c.source:
		c.source = true
		return append(again, c)
	case len(c.holds) > 1 && redis.IsTryAgainError(err):
		for j := range c.holds {
			again = append(again, call{at: c.at + j, holds: c.holds[j : j+1], node: c.node, source: c.source, asking: c.asking})
		}
		return again
	case t.lane.replicas > 0 && s.cluster != nil:
		addr, moved := redis.IsMovedError(err)
		if !moved {
			var ask bool
			if addr, ask = redis.IsAskError(err); !ask {
				return again
			}
		}
		if node := s.masterAt(t, addr); node != nil {
			c.node, c.asking = node, !moved
			return append(again, c)
		}
	}
	return again
}

// masterAt returns the cluster client's client of the master at addr, or
// nil if the slot map, reloaded, has none there.
func (s *heartbeat) masterAt(t *trip, addr string) redis.UniversalClient {
	if node, ok := t.masters[addr]; ok {
		return node
	}
	var found atomic.Pointer[redis.Client]
	_ = s.cluster.ForEachMaster(t.ctx, func(_ context.Context, c *redis.Client) error {
		if c.Options().Addr == addr {
			found.Store(c)
		}
		return nil
	})
	var node redis.UniversalClient
	if c := found.Load(); c != nil {
		node = c
	}
	if t.masters == nil {
		t.masters = make(map[string]redis.UniversalClient)
	}
	t.masters[addr] = node
	return node
}

// isRedirect reports whether err is a cluster redirection: the key's slot
// is served by another node.
func isRedirect(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && (strings.HasPrefix(rerr.Error(), "MOVED ") || strings.HasPrefix(rerr.Error(), "ASK "))
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}

// holdQueue is a min-heap of holds by renewAt.
type holdQueue []*hold

func (q holdQueue) Len() int           { return len(q) }
func (q holdQueue) Less(i, j int) bool { return q[i].renewAt < q[j].renewAt }
func (q holdQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = int32(i), int32(j)
}
func (q *holdQueue) Push(x any) {
	h := x.(*hold)
	h.index = int32(len(*q))
	*q = append(*q, h)
}
func (q *holdQueue) Pop() any {
	old := *q
	h := old[len(old)-1]
	old[len(old)-1] = nil
	h.index = -1
	*q = old[:len(old)-1]
	return h
}
