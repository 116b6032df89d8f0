package redislock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Acquire takes the lock, or another reentrant level of it, waiting while
// another owner holds it. It blocks until the lock is held, ctx is done, or
// the wait timeout of [WithWaitTimeout] passes; the latter two return an
// error matching ErrNotAcquired and the context error
// (context.DeadlineExceeded for the wait timeout). A Redis error ends the
// wait and is returned (ErrWrongType when the key holds another type),
// except a cluster redirection while a slot moves and a grant that arrived
// after its own lease had run out: after those it tries again. A failed
// Acquire leaves the held levels as they were.
//
// If ctx comes from [Lock.WithLock] on a Lock with the same key and client,
// Acquire re-enters that hold instead of waiting for it.
func (l *Lock) Acquire(ctx context.Context) error {
	if lender := lenderFor(ctx, l); lender != nil {
		return l.borrow(ctx, lender)
	}
	if l.opts.waitSet && l.opts.waitTimeout == 0 {
		ok, _, err := l.attempt(ctx)
		if !ok && err == nil {
			err = errors.Join(ErrNotAcquired, context.DeadlineExceeded)
		}
		return err
	}
	if l.opts.waitSet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.waitTimeout)
		defer cancel()
	}
	// Try at once, unless others in this process already wait for the lock:
	// then queue behind them.
	if l.holding() || !queued(l.client, l.channel) {
		ok, _, err := l.attempt(ctx)
		if ok || (err != nil && !retryable(err)) {
			return err
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
// of it, and never waits. It returns false and a nil error when another
// owner holds the lock. When ctx is done it returns an error matching
// ErrNotAcquired and the context error.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	if lender := lenderFor(ctx, l); lender != nil {
		err := l.borrow(ctx, lender)
		return err == nil, err
	}
	ok, _, err := l.attempt(ctx)
	return ok, err
}

// errTooLate is the error of an attempt whose lock was granted, but too late
// to be of use: the answer came after the lease it granted had run out.
// Acquire tries again; TryAcquire reports it.
var errTooLate = fmt.Errorf("%w: granted too late", ErrNotAcquired)

// retryable reports whether Acquire should try again after an attempt that
// failed with err: a grant that came too late, or a cluster node that
// redirected the request while a slot moves.
func retryable(err error) bool {
	return errors.Is(err, errTooLate) || isRedirect(err)
}

// attempt sends one acquire request. It reports whether this Lock holds the
// lock afterwards and, if not, the other holder's remaining lease.
func (l *Lock) attempt(ctx context.Context) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, errors.Join(ErrNotAcquired, ctxErr(ctx))
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()

	l.mu.Lock()
	h := l.hold
	l.mu.Unlock()
	if h != nil {
		var err error
		if h, err = l.liveHold(); err != nil {
			return false, 0, errors.Join(ErrNotAcquired, err)
		}
	}

	start := time.Now()
	g, err := l.runAcquire(ctx, h != nil)
	if err != nil {
		if h == nil && !l.opts.ownerSet && !isServerError(err) {
			// The request may have taken the lock before it failed. The owner
			// is unique to this Lock, so giving it up is safe.
			l.sendRelease(ctx, true)
		}
		if ctx.Err() != nil {
			err = errors.Join(ErrNotAcquired, err)
		}
		return false, 0, err
	}
	if h != nil {
		return l.reentered(ctx, h, g, start)
	}
	if !g.ok {
		return false, g.pttl, nil
	}
	if g.replicas < int64(l.opts.minReplicas) {
		l.sendRelease(ctx, true)
		return false, 0, fmt.Errorf("%w: %d of %d replicas acknowledged the acquire within %v",
			ErrNotReplicated, g.replicas, l.opts.minReplicas, l.opts.replicaTimeout)
	}
	deadline := start.Add(l.validity(l.opts.ttl))
	if !time.Now().Before(deadline) {
		l.sendRelease(ctx, true)
		return false, 0, fmt.Errorf("%w: the acquire round trip outlasted the %v lease", errTooLate, l.opts.ttl)
	}
	h = &hold{lock: l, count: 1, token: g.token, deadline: deadline, index: -1}
	l.releaseLast[len(l.releaseLast)-1] = g.token // opMu is held
	if !l.opts.noHeartbeat {
		schedule(l.client, h, start.Add(l.opts.heartbeat))
	}
	l.mu.Lock()
	l.hold, l.lostCause = h, nil
	l.armDeadlineLocked(h.deadline)
	l.mu.Unlock()
	return true, 0, nil
}

// reentered applies the answer n to a re-entry of hold h sent at start.
func (l *Lock) reentered(ctx context.Context, h *hold, g grant, start time.Time) (bool, time.Duration, error) {
	l.mu.Lock()
	if !g.ok {
		return false, 0, errors.Join(ErrNotAcquired, l.loseUnlock(h, errTaken))
	}
	if h.ended || !time.Now().Before(h.deadline) {
		// The hold ran out while the request was on its way: the key is
		// still ours on the server, and nobody will renew it. Let it go.
		err := l.loseUnlock(h, errExpired)
		l.sendRelease(ctx, true)
		return false, 0, errors.Join(ErrNotAcquired, err)
	}
	h.count++
	l.extendDeadlineLocked(h, start, l.opts.ttl)
	l.mu.Unlock()
	return true, 0, nil
}
