package redislock

import (
	"context"
	"fmt"
	"slices"
)

// Release gives up one reentrant level; the last one deletes the key and
// stops the heartbeat for this hold, or, when another Lock of this process
// waits for the lock through the same client, may hand the lock over to
// it in the same request (see the package documentation). The request is sent even when ctx is
// already done, bounded by [DefaultReleaseTimeout], so `defer l.Release(ctx)`
// is always safe; waiting for another call in flight on the same Lock is
// bounded the same way. It returns ErrNotHeld when this Lock holds nothing,
// joined with the loss cause (matching ErrLockLost) when the hold was lost.
// The local level is given up even if the request fails: a failed earlier
// level leaves the stored count above the local one, which the last release
// ignores; a failed last release leaves the key to expire after its TTL and
// returns the Redis error.
//
// A Lock that holds its own hold releases a level of it. A Lock that holds
// levels borrowed through a context releases the newest of a hold that is
// still live; a borrowed level whose hold has ended is released without a
// request and returns ErrNotHeld joined with that hold's loss cause, so a
// late release never touches a newer hold of the lender. A hold lost at its
// validity deadline may still be on the server: the Release that reports
// its loss also asks Redis to delete it, so others need not wait for its
// expiry.
func (l *Lock) Release(ctx context.Context) error {
	defer l.reportLosses()
	for {
		l.mu.Lock()
		own := l.hold
		var bs []*hold
		if own == nil {
			bs = slices.Clone(l.borrows)
		}
		l.mu.Unlock()
		if own != nil || len(bs) == 0 {
			return l.releaseLevel(ctx, own)
		}
		// The newest borrowed level of a live hold, else the newest of all.
		h := bs[len(bs)-1]
		for i := len(bs) - 1; i >= 0; i-- {
			if !bs[i].isEnded() {
				h = bs[i]
				break
			}
		}
		if l.dropBorrow(h) {
			defer h.lock.reportLosses()
			return h.lock.releaseLevel(ctx, h)
		}
		// Another goroutine released that level meanwhile: look again.
	}
}

// releaseHold gives up the level of h that this Lock took: its own, or one
// it borrowed.
func (l *Lock) releaseHold(ctx context.Context, h *hold) error {
	if h.lock != l {
		if !l.dropBorrow(h) {
			return ErrNotHeld
		}
	}
	return h.lock.releaseLevel(ctx, h)
}

// dropBorrow removes the newest borrowed level of h, reporting whether
// there was one.
func (l *Lock) dropBorrow(h *hold) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.borrows) - 1; i >= 0; i-- {
		if l.borrows[i] == h {
			l.borrows = slices.Delete(l.borrows, i, i+1)
			if len(l.borrows) == 0 {
				l.borrows = nil
			}
			return true
		}
	}
	return false
}

// notHeld is the error of a release of want (or of the own hold, when want
// is nil) that finds no such hold. If that hold was lost at its validity
// deadline, its key may still be on the server: it is given back now. op
// must be held.
func (l *Lock) notHeld(ctx context.Context, want *hold) error {
	l.mu.Lock()
	err := l.lostErr()
	if want != nil {
		err = want.notHeldErr()
	}
	gone := want
	if gone == nil {
		gone = l.stale
	}
	giveBack := gone != nil && gone.giveBack
	if giveBack {
		gone.giveBack = false
		if l.stale == gone {
			l.stale = nil
		}
	}
	l.mu.Unlock()
	if giveBack {
		_, gbErr := l.sendRelease(ctx, true, gone.tokenArg)
		l.gaveBack(gone, gbErr)
	}
	return err
}

// dropLevel gives up one level of want (or of the own hold, when want is
// nil) locally, ending the hold at its last level, and reports whether it
// was the last and the hold it dropped a level of (nil if none).
func (l *Lock) dropLevel(want *hold) (bool, *hold) {
	l.mu.Lock()
	h := l.hold
	if h == nil || (want != nil && h != want) {
		l.mu.Unlock()
		return false, nil
	}
	h.count--
	final := h.count == 0
	if final {
		l.endLocked(h, nil)
	}
	l.mu.Unlock()
	if final {
		l.unschedule(h)
	}
	return final, h
}

// lockOpDetached is lockOp for a release: it waits even when ctx is done,
// for up to DefaultReleaseTimeout.
func (l *Lock) lockOpDetached(ctx context.Context) error {
	select {
	case l.op <- struct{}{}:
		return nil
	default:
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultReleaseTimeout)
	defer cancel()
	return l.lockOp(ctx)
}

// releaseLevel gives up one level of want, a hold of l, or of l's current
// hold when want is nil.
func (l *Lock) releaseLevel(ctx context.Context, want *hold) error {
	if err := l.lockOpDetached(ctx); err != nil {
		// Give the level up all the same, without a request: the last one
		// leaves the key to expire.
		if final, h := l.dropLevel(want); h != nil && final {
			return fmt.Errorf("redislock: release of %q not sent, another call on this Lock is still in flight (the key expires after its TTL): %w", l.key, err)
		}
		return fmt.Errorf("redislock: release of %q not sent, another call on this Lock is still in flight: %w", l.key, err)
	}
	final, h := l.dropLevel(want)
	if h == nil {
		err := l.notHeld(ctx, want)
		l.unlockOp()
		return err
	}
	var n int64
	var err error
	if w := l.heir(final); w != nil {
		n, err = l.handOff(ctx, h, w)
	} else {
		n, err = l.sendRelease(ctx, final, h.tokenArg)
	}
	l.unlockOp()
	// Told after op is given back: an observer may call into the Lock.
	l.observeRelease(ctx, h, final, err)
	if err != nil {
		if final && isServerError(err) {
			// Redis answered with an error: the script may have stopped
			// after deleting the key (a refused PUBLISH), so claim nothing.
			return fmt.Errorf("redislock: release of %q failed: %w", l.key, err)
		}
		if final {
			return fmt.Errorf("redislock: release of %q not confirmed, the key expires after its TTL: %w", l.key, err)
		}
		return err
	}
	if n == -1 {
		l.mu.Lock()
		if !final {
			return l.loseUnlock(h, errTaken)
		}
		// Ended as released, yet it was lost before: say so.
		h.cause = errLost("the key was gone or held by another owner at release")
		h.unreported = true
		l.lostCause = h.cause
		if h.lost != nil {
			close(h.lost)
		}
		l.lost = closedLost
		err := h.notHeldErr()
		l.mu.Unlock()
		l.lostReport(h)
		return err
	}
	return nil
}

// sendRelease sends the release of one level of the hold with this token
// (the last when final; "0": whatever hold of this Lock's owner the key
// has), detached from ctx's cancellation and bounded by
// DefaultReleaseTimeout. op must be held.
func (l *Lock) sendRelease(ctx context.Context, final bool, token any) (int64, error) {
	cmd := l.releaseCmd
	cmd[l.tokenArg] = token
	cmd[l.tokenArg+1] = "0"
	if final {
		cmd[l.tokenArg+1] = "1"
	}
	n, err := evalsha(detach(ctx, DefaultReleaseTimeout), l.client, l.prim.release, l.releaseKeys, cmd).Int64()
	if err != nil {
		return 0, l.wrapRedisErr("release", err)
	}
	return n, nil
}
