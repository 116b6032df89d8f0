package redislock

import (
	"context"
	"fmt"
	"time"
)

// Hand-off: the last release of a hold may hand the lock, in the same
// request, to the head of this process's queue of waiters for it (the
// heir), so that the next holder needs no request of its own and learns of
// its hold in-process. The release first reserves the heir: it takes the
// request slot of the heir's Lock, so that the heir sends nothing
// meanwhile, and marks the heir reserved. The primitive's handoff script
// then releases the hold and makes the heir's hold on the server, unless it
// judges that others should get their chance (it then releases as usual).
// The releaser makes the heir's hold its Lock's own hold, as an acquire
// would, with the validity computed from the start of the releasing
// request, gives the slot back and wakes the heir, whose wait returns the
// hold. An heir whose wait ended while reserved is no longer there to take
// it: the releaser gives the hold back at once.

// shareFor is how long a process lets others in at every release of a
// lock after a release found them kept waiting.
const shareFor = 10 * time.Second

// heirState is where a waiter stands with regard to hand-offs.
type heirState uint8

const (
	heirWaiting  heirState = iota // a release may reserve it
	heirReserved                  // a release is handing it the lock; its Lock's op is taken
	heirGranted                   // it was handed the hold in granted
	heirLeft                      // its wait ended without a hold handed over
)

// heir returns the waiter of this process that the release of a hold of l,
// the last level when final, may hand the lock to, reserved, or nil when
// there is none that can take it now. op must be held.
func (l *Lock) heir(final bool) *waiter {
	if !final || l.prim.handoff == nil || l.opts.noHandOff || l.opts.minReplicas > 0 || waiting.Load() == 0 {
		return nil
	}
	notifiers.mu.Lock()
	n := notifiers.m[l.client]
	elsewhere := false
	for c, o := range notifiers.m {
		if c != l.client {
			// Waiters of this process on other clients record nothing that
			// the script would see: look for them here.
			o.mu.Lock()
			q := o.queues[l.channel]
			elsewhere = elsewhere || (q != nil && len(q.waiters) > 0)
			o.mu.Unlock()
		}
	}
	notifiers.mu.Unlock()
	if n == nil {
		return nil
	}
	n.mu.Lock()
	w := n.heirLocked(l)
	if w != nil && elsewhere {
		// Released to all, and the heir lets them try first.
		w.q.shareUntil = time.Now().Add(shareFor)
	}
	n.mu.Unlock()
	if w == nil {
		return nil
	}
	heir := w.lock
	heir.mu.Lock()
	free := heir.hold == nil // it cannot get one while its op is taken
	heir.mu.Unlock()
	if !free {
		w.unreserve(0)
		return nil
	}
	return w
}

// heirLocked reserves the head of l's queue if a release of l may hand it
// the lock: a waiter of another Lock of the same primitive and key, with an
// owner of its own (so that a hold it may have been handed without hearing
// of it is its own to replace), that needs no replica acknowledgement and
// is not sending a request of its own. The subscription must be confirmed:
// the heir may be waiting for that and no wake-up. n.mu must be held.
func (n *notifier) heirLocked(l *Lock) *waiter {
	q := n.queues[l.channel]
	if q == nil || !q.confirmed || len(q.waiters) == 0 {
		return nil
	}
	w := q.waiters[0]
	heir := w.lock
	if heir == l || heir.prim != l.prim || heir.key != l.key || heir.owner == l.owner ||
		!heir.opts.ownerUnique || heir.opts.noHandOff || heir.opts.minReplicas > 0 {
		return nil
	}
	w.gmu.Lock()
	defer w.gmu.Unlock()
	if w.state != heirWaiting {
		return nil
	}
	select {
	case heir.op <- struct{}{}:
	default:
		return nil // it is sending a request of its own
	}
	w.state = heirReserved
	return w
}

// handOff sends the last release of h, whose level is already given up
// locally, handing the lock to w, reserved by heir; it returns as
// sendRelease does. op must be held.
func (l *Lock) handOff(ctx context.Context, h *hold, w *waiter) (int64, error) {
	heir := w.lock
	start := time.Now()
	keys := l.releaseKeys
	if keys == nil {
		keys = []string{l.key, l.latch}
	}
	keys = append(keys[:len(keys):len(keys)], l.acquireKeys[1]) // the fencing counter
	cmd := make([]any, 0, 3+len(keys)+6)
	cmd = append(cmd, "evalsha", l.prim.handoffSHA, len(keys))
	for _, k := range keys {
		cmd = append(cmd, k)
	}
	cmd = append(cmd, l.owner, h.tokenArg, l.channel, publishVerb(l.client), heir.owner, heir.opts.ttlMs, processGroup, "0")
	n := w.n
	n.mu.Lock()
	if start.Before(w.q.shareUntil) {
		cmd[len(cmd)-1] = "1"
	}
	n.mu.Unlock()
	token, err := evalsha(detach(ctx, DefaultReleaseTimeout), l.client, l.prim.handoff, keys, cmd).Int64()
	if err != nil && !isServerError(err) {
		// No answer: the lock may have been handed over all the same, and
		// the heir may stop waiting before it tries again. Its owner is its
		// Lock's alone, and its Lock holds nothing: giving up whatever hold
		// of that owner the key has is safe.
		_, _ = heir.sendRelease(ctx, true, "0")
	}
	if err != nil || token <= 0 {
		// Released, or not: either way the heir is on its own again.
		var after time.Duration
		if err == nil && token == -2 {
			// Released for others kept waiting: they hear of it about as
			// soon as the heir would try; let them try first, for about
			// as long as this request took. Those that try again by
			// themselves may not be trying now: let them in at every
			// release for a while.
			token, after = 0, min(time.Since(start), l.opts.retryMin)
			n.mu.Lock()
			w.q.shareUntil = time.Now().Add(shareFor)
			n.mu.Unlock()
		}
		w.unreserve(after)
		if err != nil {
			return 0, l.wrapRedisErr("release", err)
		}
		return token, nil
	}
	var gbErr error
	if !w.take(start, token) {
		// The heir stopped waiting, or the reply came after the lease it
		// granted: nobody is to have that hold.
		if _, err := heir.sendRelease(ctx, true, token); err != nil {
			gbErr = fmt.Errorf("%w (the hold handed to a waiter that stopped waiting was not given back; it expires after %v)",
				err, heir.opts.ttl)
		}
	}
	heir.unlockOp()
	w.signal()
	return 0, gbErr
}

// unreserve makes w, reserved by a release that did not hand it the lock,
// a waiter like the others again, gives its Lock's op back and wakes it:
// the lock may be free. Its next attempt waits for after, if positive.
func (w *waiter) unreserve(after time.Duration) {
	w.gmu.Lock()
	if w.state == heirReserved {
		w.state = heirWaiting
	}
	if after > 0 {
		w.notBefore = time.Now().Add(after)
	}
	w.gmu.Unlock()
	w.lock.unlockOp()
	w.signal()
}

// take makes the hold with this token, which a release that started at
// start handed over, the own hold of w's Lock, unless w stopped waiting
// meanwhile; it reports whether w has it. w must be reserved.
func (w *waiter) take(start time.Time, token int64) bool {
	w.gmu.Lock()
	defer w.gmu.Unlock()
	if w.state != heirReserved {
		return false
	}
	h, err := w.lock.install(start, token)
	if err != nil {
		w.state = heirWaiting
		return false
	}
	w.state, w.granted = heirGranted, h
	return true
}

// handed returns the hold handed to w, or nil, and how long its next
// attempt is to wait (see unreserve).
func (w *waiter) handed() (*hold, time.Duration) {
	w.gmu.Lock()
	defer w.gmu.Unlock()
	if w.state == heirGranted {
		return w.granted, 0
	}
	return nil, time.Until(w.notBefore)
}

// abandon ends w's wait: no release may hand it the lock from now on. It
// returns the hold handed to it, if one was.
func (w *waiter) abandon() *hold {
	w.gmu.Lock()
	defer w.gmu.Unlock()
	if w.state == heirGranted {
		return w.granted
	}
	w.state = heirLeft
	return nil
}
