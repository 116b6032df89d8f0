package redislock

import (
	"container/heap"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A heartbeat renews every held lock of one Redis client. It has no
// goroutine of its own: a timer runs a renewal round when the earliest
// renewal is due, and the round sends all renewals due by then in one
// pipeline. Without holds it stays registered for idleLinger, so a client
// that locks again soon reuses it, and then leaves the registry, so that it
// does not keep a closed client from being collected.
type heartbeat struct {
	client redis.UniversalClient
	batch  int // keys per extend call

	mu      sync.Mutex
	queue   holdQueue // holds waiting for their renewal, earliest first
	n       int       // holds registered: queued or in a running round
	timer   *time.Timer
	running bool
	idle    sync.Cond // broadcast when a round ends
}

// extendBatch is how many renewals one extend call carries on a client that
// sends every key to one server.
const extendBatch = 100

// idleLinger is how long a heartbeat without holds stays registered.
var idleLinger = time.Minute

// maxRound is the deadline of one renewal round's context. go-redis bounds
// its socket I/O by it only with ContextTimeoutEnabled; otherwise its own
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
		s = &heartbeat{client: client, batch: 1}
		if _, ok := client.(*redis.Client); ok {
			s.batch = extendBatch
		}
		s.idle.L = &s.mu
		s.timer = time.AfterFunc(time.Hour, s.round)
		s.timer.Stop()
		if heartbeats.m == nil {
			heartbeats.m = make(map[redis.UniversalClient]*heartbeat)
		}
		heartbeats.m[client] = s
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h.hb, h.renewAt, h.removed = s, renewAt, false
	heap.Push(&s.queue, h)
	s.n++
	if h.index == 0 && !s.running {
		s.timer.Reset(time.Until(renewAt))
	}
}

// remove stops renewing h. If h was the last hold, remove waits for a
// running round to finish, so no renewal is in flight when it returns.
func (s *heartbeat) remove(h *hold) {
	heartbeats.mu.Lock()
	s.mu.Lock()
	if h.removed {
		s.mu.Unlock()
		heartbeats.mu.Unlock()
		return
	}
	h.removed = true
	if h.index >= 0 {
		heap.Remove(&s.queue, int(h.index))
	}
	s.n--
	last := s.n == 0
	if last && !s.running {
		s.timer.Reset(idleLinger)
	}
	heartbeats.mu.Unlock()
	for last && s.running {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

// round renews every hold due now or soon; it runs on s.timer.
func (s *heartbeat) round() {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return
	}
	if s.n == 0 {
		s.mu.Unlock()
		s.retire()
		return
	}
	s.running = true
	now := time.Now()
	// Renewing a little early costs nothing and lets holds whose renewals
	// fall close together share one round trip.
	soon := now.Add(s.queue[0].lock.opts.heartbeat / 8)
	var due []*hold
	for len(s.queue) > 0 && !s.queue[0].renewAt.After(soon) {
		due = append(due, heap.Pop(&s.queue).(*hold))
	}
	s.mu.Unlock()

	start := time.Now()
	results := s.renew(due)

	s.mu.Lock()
	for i, h := range due {
		if h.removed {
			continue
		}
		switch results[i] {
		case renewOK:
			h.renewAt = start.Add(h.lock.opts.heartbeat)
		case renewFailed:
			// Retry well before the deadline; Redis may recover in time.
			h.renewAt = time.Now().Add(min(h.lock.opts.heartbeat, h.lock.validity(h.lock.opts.ttl)/8))
		case renewRefused:
			h.removed = true
			s.n--
			continue
		}
		heap.Push(&s.queue, h)
	}
	s.running = false
	if len(s.queue) > 0 {
		s.timer.Reset(time.Until(s.queue[0].renewAt))
	} else if s.n == 0 {
		s.timer.Reset(idleLinger)
	}
	s.idle.Broadcast()
	s.mu.Unlock()
	// Tell the Locks after the queue is consistent, and without s.mu: a Lock
	// reporting loss may call remove.
	for i, h := range due {
		switch results[i] {
		case renewOK:
			h.lock.renewed(h, start)
		case renewRefused:
			h.lock.renewRefused(h)
		}
	}
}

// retire removes an idle heartbeat from the registry; it runs on s.timer
// idleLinger after the last hold went.
func (s *heartbeat) retire() {
	heartbeats.mu.Lock()
	defer heartbeats.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 && !s.running && heartbeats.m[s.client] == s {
		delete(heartbeats.m, s.client)
	}
}

type renewResult uint8

const (
	renewFailed renewResult = iota // no answer: try again
	renewOK
	renewRefused // the owner no longer holds the key
)

// renew sends the renewals of due and returns a result per hold: one
// pipeline per round, or on a cluster with WithMinReplicas, one per master,
// each ending in WAIT.
func (s *heartbeat) renew(due []*hold) []renewResult {
	results := make([]renewResult, len(due))
	// A renewal answered after a whole lease is of no use to anyone.
	timeout := maxRound
	replicas := false
	for _, h := range due {
		timeout = min(timeout, h.lock.validity(h.lock.opts.ttl))
		replicas = replicas || h.lock.opts.minReplicas > 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	cc, cluster := s.client.(*redis.ClusterClient)
	if !cluster || !replicas {
		// A cluster client's own pipeline routes each key to its master.
		s.renewOn(ctx, s.client, due, results)
		return results
	}
	// WAIT must follow the writes on their connection: group by master.
	groups := make(map[*redis.Client][]int) // indexes into due
	for i, h := range due {
		node, err := cc.MasterForKey(ctx, h.lock.key)
		if err != nil {
			continue // renewFailed
		}
		groups[node] = append(groups[node], i)
	}
	// One master's WAIT must not hold up the others: renew them at once.
	var wg sync.WaitGroup
	var redirected atomic.Bool
	for node, idx := range groups {
		wg.Go(func() {
			holds := make([]*hold, len(idx))
			for k, i := range idx {
				holds[k] = due[i]
			}
			part := make([]renewResult, len(idx))
			if s.renewOn(ctx, node, holds, part) {
				redirected.Store(true)
			}
			for k, i := range idx {
				results[i] = part[k] // each goroutine writes its own indexes
			}
		})
	}
	wg.Wait()
	if redirected.Load() {
		// A slot moved or a replica was promoted: the failed renewals are
		// retried soon, after go-redis has reloaded the slot map.
		cc.ReloadState(ctx)
	}
	return results
}

// renewOn renews holds in one pipeline through c, followed by WAIT if any
// of them asks for replica acknowledgement, and stores a result per hold.
// It reports whether a server redirected a renewal (MOVED or ASK).
func (s *heartbeat) renewOn(ctx context.Context, c redis.UniversalClient, holds []*hold, results []renewResult) (redirected bool) {
	minReplicas, waitTimeout := 0, time.Duration(0)
	for _, h := range holds {
		minReplicas = max(minReplicas, h.lock.opts.minReplicas)
		waitTimeout = max(waitTimeout, h.lock.opts.replicaTimeout)
	}
	var cmds []*redis.Cmd
	var wait *redis.Cmd
	// EVALSHA first; if a server lacks the script, the same pipeline again
	// with EVAL, which also loads it there (SCRIPT LOAD on a cluster client
	// would need every node up).
	for withSource := false; ; withSource = true {
		pipe := c.Pipeline()
		cmds = cmds[:0]
		for lo := 0; lo < len(holds); lo += s.batch {
			part := holds[lo:min(lo+s.batch, len(holds))]
			keys := make([]string, len(part))
			args := make([]any, 0, 3*len(part))
			for i, h := range part {
				keys[i] = h.lock.key
				args = h.appendRenewArgs(args)
			}
			renew := part[0].renewScript()
			if withSource {
				cmds = append(cmds, renew.Eval(ctx, pipe, keys, args...))
			} else {
				cmds = append(cmds, renew.EvalSha(ctx, pipe, keys, args...))
			}
		}
		if minReplicas > 0 {
			wait = pipe.Do(ctx, "wait", minReplicas, waitTimeout.Milliseconds())
		}
		_, err := pipe.Exec(ctx)
		if err == nil || withSource || !isNoScript(err) {
			break
		}
	}
	acked := int64(0)
	if wait != nil {
		acked, _ = wait.Int64()
	}
	for i, cmd := range cmds {
		vals, err := cmd.Int64Slice()
		if err != nil {
			redirected = redirected || isRedirect(err)
			continue // renewFailed
		}
		lo := i * s.batch
		for j, v := range vals {
			if lo+j >= len(holds) {
				break
			}
			h := holds[lo+j]
			switch {
			case v != 1:
				results[lo+j] = renewRefused
			case int64(h.lock.opts.minReplicas) > acked:
				// Renewed on the master only: it does not count.
			default:
				results[lo+j] = renewOK
			}
		}
	}
	return redirected
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
func (q holdQueue) Less(i, j int) bool { return q[i].renewAt.Before(q[j].renewAt) }
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
