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
// acknowledgements than came, leaving the deadline as it was.
func (l *Lock) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl == 0 {
		ttl = l.opts.ttl
	}
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("%w (Extend)", err)
	}
	if lender := l.lender(); lender != nil {
		return lender.Extend(ctx, ttl)
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	h, err := l.liveHold()
	if err != nil {
		return err
	}
	start := time.Now()
	args := []any{l.owner, ttl.Milliseconds()}
	var v any
	var replicas int64
	if l.opts.minReplicas > 0 {
		v, replicas, err = l.evalReplicated(ctx, extendScript, l.keys, args)
	} else {
		v, err = extendScript.Run(ctx, l.client, l.keys, args...).Result()
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
		// As in reentered: the hold ran out meanwhile; free the key.
		err := l.loseUnlock(h, errExpired)
		l.sendRelease(ctx, true)
		return err
	}
	if replicas < int64(l.opts.minReplicas) {
		l.mu.Unlock()
		return fmt.Errorf("%w: %d of %d replicas acknowledged the extension within %v; the validity deadline stays",
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
	if lender := l.lender(); lender != nil {
		return lender.TTL(ctx)
	}
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(ctx)
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	h, err := l.liveHold()
	if err != nil {
		return 0, err
	}
	n, err := pttlScript.Run(ctx, l.client, l.keys, l.owner).Int64()
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
