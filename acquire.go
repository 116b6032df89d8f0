package redislock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Acquire takes the lock, or another reentrant level of it, waiting while
// another owner holds it. It blocks until the lock is held, ctx is done, or
// the wait timeout of [WithWaitTimeout] passes; the latter two return an
// error matching ErrNotAcquired and the context error
// (context.DeadlineExceeded for the wait timeout). Waiting for another
// call in flight on the same Lock counts as waiting. A Redis error ends the
// wait and is returned (ErrWrongType when the key holds another type),
// except a cluster redirection or TRYAGAIN while a slot moves and a grant
// that arrived after its own lease had run out: after those it tries again.
// A failed Acquire leaves the held levels as they were.
//
// If ctx comes from [Lock.WithLock] on a Lock with the same key and client,
// Acquire re-enters that hold instead of waiting for it; so does an Acquire
// on a Lock that holds such a borrowed level. A borrowed level belongs to
// the hold it came from: it ends when that hold ends.
func (l *Lock) Acquire(ctx context.Context) error {
	defer l.reportLosses()
	if l.opts.observer == nil {
		_, err := l.acquire(ctx)
		return err
	}
	start := time.Now()
	h, err := l.acquire(ctx)
	l.observeAcquire(ctx, start, h, err)
	return err
}

// acquire is Acquire; it returns the hold it took a level of.
func (l *Lock) acquire(ctx context.Context) (*hold, error) {
	if h := l.lenderHold(ctx); h != nil {
		return h, l.borrow(ctx, h)
	}
	if l.opts.waitSet && l.opts.waitTimeout == 0 {
		h, _, err := l.attempt(ctx, false)
		if h == nil && err == nil {
			err = errors.Join(ErrNotAcquired, context.DeadlineExceeded)
		}
		return h, err
	}
	if l.opts.waitSet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.waitTimeout)
		defer cancel()
	}
	if l.prim.fair {
		if queued(l.client, l.channel) {
			// Others of this process wait: the subscription is there, so
			// subscribe before the first try, which then need not be made
			// twice.
			return l.waitFair(ctx)
		}
		// Try at once: the queue in Redis keeps the order.
		h, _, err := l.attempt(ctx, true)
		if h != nil || (err != nil && !retryable(err)) {
			if err != nil && !isServerError(err) {
				l.leave(ctx) // the request may have queued this Lock
			}
			return h, err
		}
		return l.waitFair(ctx)
	}
	// Try at once, unless others in this process already wait for the lock:
	// then queue behind them.
	if l.holding() || (l.bypass != nil && l.bypass()) || !queued(l.client, l.channel) {
		h, _, err := l.attempt(ctx, true)
		if h != nil || (err != nil && !retryable(err)) {
			if err != nil && !isServerError(err) {
				l.leave(ctx) // the request may have left a writer's mark
			}
			return h, err
		}
	}
	return l.wait(ctx)
}

func (l *Lock) holding() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hold != nil
}

// TryAcquire makes one attempt to take the lock, or another reentrant level
// of it, and never waits for another owner. It returns false and a nil
// error when another owner holds the lock. When ctx is done before the
// attempt is sent (also while another call on the same Lock is in flight)
// it returns an error matching ErrNotAcquired and the context error.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	defer l.reportLosses()
	var start time.Time
	if l.opts.observer != nil {
		start = time.Now()
	}
	var h *hold
	var err error
	if lh := l.lenderHold(ctx); lh != nil {
		if err = l.borrow(ctx, lh); err == nil {
			h = lh
		}
	} else {
		h, _, err = l.attempt(ctx, false)
	}
	if l.opts.observer != nil {
		l.observeAcquire(ctx, start, h, err)
	}
	return h != nil, err
}

// errTooLate is the error of an attempt whose lock was granted, but too late
// to be of use: the answer came after the lease it granted had run out.
// Acquire tries again; TryAcquire reports it.
var errTooLate = fmt.Errorf("%w: granted too late", ErrNotAcquired)

// retryable reports whether Acquire should try again after an attempt that
// failed with err: a grant that came too late, or a cluster node that
// redirected the request or asked for a retry while a slot moves.
func retryable(err error) bool {
	return errors.Is(err, errTooLate) || isRedirect(err) || isTryAgain(err)
}

// isTryAgain reports whether err is a cluster node's TRYAGAIN: the keys of
// a request are split between two nodes while their slot migrates.
func isTryAgain(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "TRYAGAIN")
}

// lockOp waits for this Lock's other request in flight, if any, or for ctx.
func (l *Lock) lockOp(ctx context.Context) error {
	select {
	case l.op <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxErr(ctx)
	}
}

func (l *Lock) unlockOp() { <-l.op }

// attempt sends one acquire request for the own hold: a re-entry when
// there is one, a fresh acquire otherwise; waiting says whether a refused
// caller will wait (a fair lock queues it). It returns the hold when this
// Lock holds the lock afterwards and, if not, the other holder's remaining
// lease.
func (l *Lock) attempt(ctx context.Context, waiting bool) (*hold, time.Duration, error) {
	return l.attemptFor(ctx, waiting, nil)
}

// attemptFor is attempt for the waiter w of l, if not nil: a release may
// have handed w the lock, and then no request is sent; or it may have let
// others in, and then none is sent yet: the duration returned is how long
// to wait before trying.
func (l *Lock) attemptFor(ctx context.Context, waiting bool, w *waiter) (*hold, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, errors.Join(ErrNotAcquired, ctxErr(ctx))
	}
	if err := l.lockOp(ctx); err != nil {
		return nil, 0, errors.Join(ErrNotAcquired, err)
	}
	defer l.unlockOp()
	if w != nil {
		// Handed over under op: it cannot come while this attempt runs.
		h, after := w.handed()
		if h != nil || after > 0 {
			return h, after, nil
		}
	}

	l.mu.Lock()
	h := l.hold
	l.mu.Unlock()
	if h != nil {
		var err error
		if h, err = l.liveHold(); err != nil {
			return nil, 0, errors.Join(ErrNotAcquired, err)
		}
		return l.reenter(ctx, h)
	}
	if l.guard != nil {
		if err := l.guard(); err != nil {
			return nil, 0, err
		}
	}

	start := time.Now()
	g, err := l.runAcquire(ctx, "0", waiting)
	if err != nil {
		if l.opts.ownerUnique && !isServerError(err) {
			// The request may have taken the lock before it failed. The owner
			// is unique to this Lock, which holds nothing: giving up whatever
			// hold of this owner the key has is safe.
			_, _ = l.sendRelease(ctx, true, "0")
		}
		if ctx.Err() != nil {
			err = errors.Join(ErrNotAcquired, ctxErr(ctx), err)
		}
		return nil, 0, err
	}
	if !g.ok {
		return nil, g.pttl, nil
	}
	if g.replicas < int64(l.opts.minReplicas) {
		_, _ = l.sendRelease(ctx, true, g.token)
		return nil, 0, fmt.Errorf("%w: %w: %d of %d replicas acknowledged the acquire within %v",
			ErrNotAcquired, ErrNotReplicated, g.replicas, l.opts.minReplicas, l.opts.replicaTimeout)
	}
	h, err = l.install(start, g.token)
	if errors.Is(err, errTooLate) {
		_, _ = l.sendRelease(ctx, true, g.token)
		return nil, 0, err
	}
	if err != nil {
		return nil, 0, errors.Join(ErrNotAcquired, err)
	}
	return h, 0, nil
}

// install makes the new hold with this token, taken by a request sent at
// start, l's own hold, and has the heartbeat renew it. op must be held. It
// fails with errTooLate when the hold's validity ended before it came (its
// key is still on the server), and with the loss when a renewal already
// found its key gone.
func (l *Lock) install(start time.Time, token int64) (*hold, error) {
	deadline := start.Add(l.validity(l.opts.ttl))
	if !time.Now().Before(deadline) {
		return nil, fmt.Errorf("%w: the acquire round trip outlasted the %v lease", errTooLate, l.opts.ttl)
	}
	h := &hold{lock: l, count: 1, token: token, deadline: deadline, index: -1}
	h.tokenArg = &h.token
	if !l.opts.noHeartbeat {
		schedule(l.client, h, start.Add(l.opts.heartbeat))
	}
	l.mu.Lock()
	if h.ended {
		// A renewal already found the key gone: never publish the hold.
		return nil, l.loseUnlock(h, errTaken)
	}
	l.hold, l.lostCause, l.stale = h, nil, nil
	h.since = time.Now()
	l.armDeadlineLocked(h.deadline)
	l.mu.Unlock()
	return h, nil
}

// reenter takes another level of the own hold h; op must be held.
func (l *Lock) reenter(ctx context.Context, h *hold) (*hold, time.Duration, error) {
	start := time.Now()
	g, err := l.runAcquire(ctx, h.tokenArg, false)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(ErrNotAcquired, ctxErr(ctx), err)
		}
		return nil, 0, err
	}
	l.mu.Lock()
	if !g.ok {
		return nil, 0, errors.Join(ErrNotAcquired, l.loseUnlock(h, errTaken))
	}
	if h.ended || !time.Now().Before(h.deadline) {
		// The hold ran out while the request was on its way: the key is
		// still ours on the server, and nobody will renew it. Let it go.
		err := l.loseUnlock(h, errExpired)
		l.mu.Lock()
		h.giveBack = false
		l.mu.Unlock()
		_, _ = l.sendRelease(ctx, true, h.tokenArg)
		return nil, 0, errors.Join(ErrNotAcquired, err)
	}
	h.count++
	if l.opts.minReplicas == 0 {
		// With WithMinReplicas only acknowledged requests move the
		// deadline, and a re-entry sends no WAIT: the level is taken, the
		// deadline stays where the last acknowledged request put it.
		l.extendDeadlineLocked(h, start, l.opts.ttl)
	}
	l.mu.Unlock()
	return h, 0, nil
}

// borrow takes another level of h, a hold of another Lock (the lender),
// on behalf of l. It fails without waiting when h has ended.
func (l *Lock) borrow(ctx context.Context, h *hold) error {
	lender := h.lock
	if err := ctx.Err(); err != nil {
		return errors.Join(ErrNotAcquired, ctxErr(ctx))
	}
	if err := lender.lockOp(ctx); err != nil {
		return errors.Join(ErrNotAcquired, err)
	}
	lender.mu.Lock()
	if lender.hold != h {
		err := h.notHeldErr()
		lender.mu.Unlock()
		lender.unlockOp()
		return errors.Join(ErrNotAcquired, err)
	}
	lender.mu.Unlock()
	_, _, err := lender.reenter(ctx, h)
	lender.unlockOp()
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.borrows = append(l.borrows, h)
	l.mu.Unlock()
	return nil
}
