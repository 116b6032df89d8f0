package redislock

import (
	"context"
	"fmt"
	"time"
)

// Extend makes the current hold's lease last at least ttl from now (0: the
// lock's TTL) and moves the validity deadline with it. It never shortens a
// lease, and neither does the heartbeat: after Extend to more than the TTL,
// renewals resume when less than a TTL is left. It returns
// ErrInvalidArgument for a ttl not above its safety margin (other than 0);
// ErrNotHeld, joined with the loss cause when the hold was lost (matching
// ErrLockLost); and ErrNotReplicated when [WithMinReplicas] asks for more
// acknowledgements than came, leaving the deadline as it was. On a Lock that
// holds a level borrowed through a context, it extends the lender's hold,
// and 0 means the lender's TTL.
func (l *Lock) Extend(ctx context.Context, ttl time.Duration) error {
	defer l.reportLosses()
	h := l.current()
	if h != nil && h.lock != l {
		defer h.lock.reportLosses()
		return h.lock.extendHold(ctx, h, ttl) // the lender's TTL is the default
	}
	return l.extendHold(ctx, h, ttl)
}

// extendHold is Extend of h, a hold of l, or of l's own hold when h is nil.
func (l *Lock) extendHold(ctx context.Context, want *hold, ttl time.Duration) error {
	if ttl == 0 {
		ttl = l.opts.ttl
	}
	if err := l.opts.checkTTL(ttl); err != nil {
		return fmt.Errorf("%w (Extend)", err)
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	if err := l.lockOp(ctx); err != nil {
		return err
	}
	defer l.unlockOp()
	h, err := l.liveHold()
	if err != nil {
		return err
	}
	if want != nil && h != want {
		l.mu.Lock()
		defer l.mu.Unlock()
		return want.notHeldErr()
	}
	start := time.Now()
	args := []any{l.owner, h.tokenArg, ttl.Milliseconds()}
	var v any
	var replicas int64
	if l.opts.minReplicas > 0 {
		v, replicas, err = l.evalReplicated(ctx, l.prim.renew, l.acquireKeys[:1], args)
	} else {
		v, err = l.prim.renew.Run(ctx, l.client, l.acquireKeys[:1], args...).Result()
	}
	if err != nil {
		return l.wrapRedisErr("extend", err)
	}
	res, _ := v.([]any)
	l.mu.Lock()
	if len(res) != 1 || res[0] != int64(1) {
		return l.loseUnlock(h, errTaken)
	}
	if h.ended || !time.Now().Before(h.deadline) {
		// As in reenter: the hold ran out meanwhile; free the key.
		err := l.loseUnlock(h, errExpired)
		l.mu.Lock()
		h.giveBack = false
		l.mu.Unlock()
		_, _ = l.sendRelease(ctx, true, h.tokenArg)
		return err
	}
	if replicas < int64(l.opts.minReplicas) {
		l.mu.Unlock()
		return fmt.Errorf("redislock: extend %q: %w: %d of %d replicas acknowledged the extension within %v; the validity deadline stays", l.key,
			ErrNotReplicated, replicas, l.opts.minReplicas, l.opts.replicaTimeout)
	}
	l.extendDeadlineLocked(h, start, ttl)
	l.mu.Unlock()
	return nil
}

// TTL returns the remaining lease of the current hold as Redis reports it,
// or a negative duration if the key has no expiry. It returns ErrNotHeld
// (joined with the loss cause, if any) when this owner does not hold the key.
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	defer l.reportLosses()
	h := l.current()
	if h != nil && h.lock != l {
		defer h.lock.reportLosses()
		return h.lock.ttlOf(ctx, h)
	}
	return l.ttlOf(ctx, h)
}

func (l *Lock) ttlOf(ctx context.Context, want *hold) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(ctx)
	}
	if err := l.lockOp(ctx); err != nil {
		return 0, err
	}
	defer l.unlockOp()
	h, err := l.liveHold()
	if err != nil {
		return 0, err
	}
	if want != nil && h != want {
		l.mu.Lock()
		defer l.mu.Unlock()
		return 0, want.notHeldErr()
	}
	n, err := l.prim.pttl.Run(ctx, l.client, l.acquireKeys[:1], l.owner, h.tokenArg).Int64()
	if err != nil {
		return 0, l.wrapRedisErr("ttl", err)
	}
	if n == -2 {
		l.mu.Lock()
		return 0, l.loseUnlock(h, errTaken)
	}
	if n < 0 {
		return -1, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}
