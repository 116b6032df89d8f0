package redislock

import (
	"context"
	"fmt"
)

// Release gives up one reentrant level; the last one deletes the key and
// stops the heartbeat for this hold. The request is sent even when ctx is
// already done, bounded by [DefaultReleaseTimeout], so `defer l.Release(ctx)`
// is always safe. It returns ErrNotHeld when this Lock holds nothing, joined
// with the loss cause (matching ErrLockLost) when the hold was lost. The
// local count drops even if the request fails; a failed last release leaves
// the key to expire after its TTL and returns the Redis error.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	if n := len(l.lenders); n > 0 {
		lender := l.lenders[n-1]
		l.lenders = l.lenders[:n-1]
		l.mu.Unlock()
		return lender.Release(ctx)
	}
	l.mu.Unlock()

	l.opMu.Lock()
	defer l.opMu.Unlock()
	l.mu.Lock()
	h := l.hold
	if h == nil {
		err := l.lostErr()
		l.mu.Unlock()
		return err
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

	n, err := l.sendRelease(ctx, final)
	if err != nil {
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
		l.lostCause = errLost("the key was gone or held by another owner at release")
		if h.lost != nil {
			close(h.lost)
		}
		l.lost = closedLost
		err := l.lostErr()
		l.mu.Unlock()
		return err
	}
	return nil
}

// sendRelease sends the release request detached from ctx's cancellation and
// bounded by DefaultReleaseTimeout.
func (l *Lock) sendRelease(ctx context.Context, final bool) (int64, error) {
	cmd := l.release
	if final {
		cmd = l.releaseLast
	}
	n, err := evalsha(detach(ctx, DefaultReleaseTimeout), l.client, releaseScript, l.withFence, cmd).Int64()
	if err != nil {
		return 0, l.wrapRedisErr("release", err)
	}
	return n, nil
}
