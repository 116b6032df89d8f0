package redislock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// hold is one continuous tenure of a Lock, from a fresh acquire until the
// last release or the loss. Levels other Locks borrow through a context
// (see WithLock) are levels of the hold they were taken from, and end with
// it. Fields are guarded by the owning Lock's mu, except the ones the
// heartbeat and the deadline queue own.
type hold struct {
	lock     *Lock
	deadline time.Time     // local validity deadline, monotonic
	lost     chan struct{} // made when Lost asks for it
	cancels  map[*context.CancelCauseFunc]struct{}
	token    int64
	tokenArg any // &token, for the requests that carry it without boxing
	count    int32
	ended    bool
	giveBack bool // lost while its key may still be on the server
	// unreported: lost, and the loss not yet told to the observer and
	// logger (see lostReport).
	unreported bool
	removed    bool  // guarded by the heartbeat's mu, as index, hb and renewAt are
	cause      error // why it was lost; nil while live or when released
	since      time.Time

	// Guarded by the heartbeat's mu.
	index   int32 // in the heartbeat's queue; -1 when not queued
	dlIndex int32 // guarded by deadlines.mu, as dlAt is; see deadlineHeap
	hb      *heartbeat
	renewAt int64 // in monoTime's nanoseconds

	dlAt int64 // when the deadline fires, in monoTime's nanoseconds
}

// renewScript is the script that renews h with the heartbeat: it takes one
// key per hold and, for each, the arguments of appendRenewArgs, in order, and
// returns an array with 1 for each hold still held (its lease now at least
// its TTL) and 0 for each that is not. Holds of one round that share a
// renewal script may share a call.
func (h *hold) renewScript() *redis.Script { return h.lock.prim.renew }

// appendRenewArgs appends h's arguments for its renewal script to args.
func (h *hold) appendRenewArgs(args []any) []any {
	return append(args, &h.lock.owner, h.tokenArg, &h.lock.opts.ttlMs)
}

// Channels for Lost when there is no hold: one that is never closed, and
// one that is, for a hold that was lost before anyone asked for its channel.
var (
	neverLost  = make(chan struct{})
	closedLost = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
)

// live reports whether h has not ended and its validity deadline is ahead.
func (h *hold) live() bool {
	h.lock.mu.Lock()
	defer h.lock.mu.Unlock()
	return !h.ended && time.Now().Before(h.deadline)
}

// isEnded reports whether h was released or lost.
func (h *hold) isEnded() bool {
	h.lock.mu.Lock()
	defer h.lock.mu.Unlock()
	return h.ended
}

// notHeldErr is the error of a call that needs h after h ended.
// h.lock.mu must be held.
func (h *hold) notHeldErr() error {
	if h.cause != nil {
		return errors.Join(ErrNotHeld, h.cause)
	}
	return ErrNotHeld
}

// lostChan returns the channel that closes when h is lost.
func (h *hold) lostChan() <-chan struct{} {
	l := h.lock
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.lost == nil {
		if h.ended && h.cause != nil {
			return closedLost
		}
		if h.ended {
			return neverLost
		}
		h.lost = make(chan struct{})
	}
	return h.lost
}

// liveHold returns the own hold, or the error to report when there is
// none; a hold past its validity deadline is lost first.
func (l *Lock) liveHold() (*hold, error) {
	l.mu.Lock()
	h := l.hold
	if h == nil {
		err := l.lostErr()
		l.mu.Unlock()
		return nil, err
	}
	if !time.Now().Before(h.deadline) {
		return nil, l.loseUnlock(h, errExpired)
	}
	l.mu.Unlock()
	return h, nil
}

// lostErr is the error for a call that needs a hold when there is none.
// l.mu must be held.
func (l *Lock) lostErr() error {
	if l.lostCause != nil {
		return errors.Join(ErrNotHeld, l.lostCause)
	}
	return ErrNotHeld
}

// Why a hold is lost.
var (
	errTaken   = errLost("the key is gone or held by another owner")
	errExpired = errLost("the lease ran out before it was renewed")
)

// loseUnlock ends hold h as lost (if it has not ended yet), unlocks l.mu,
// which must be held, and stops renewing h. It returns the error a call
// that needs the hold reports. The loss is told to the observer and logger
// later, by reportLosses, once no lock of this package is held.
func (l *Lock) loseUnlock(h *hold, cause error) error {
	l.loseLocked(h, cause)
	err := h.notHeldErr()
	l.mu.Unlock()
	l.unschedule(h)
	return err
}

// loseLocked ends hold h as lost: Lost closes, WithLock contexts are
// cancelled with cause. l.mu must be held. The caller removes h from the
// heartbeat afterwards, without holding l.mu.
func (l *Lock) loseLocked(h *hold, cause error) {
	if !h.ended {
		l.endLocked(h, cause)
	}
}

// endLocked ends hold h: released when cause is nil, lost otherwise.
// l.mu must be held.
func (l *Lock) endLocked(h *hold, cause error) {
	h.ended, h.cause = true, cause
	h.unreported = cause != nil
	if cause != nil {
		l.unreported = h
	}
	if cause == errExpired {
		// Redis did not say the key is gone: give it back when next asked
		// to release, so that others need not wait for its expiry.
		h.giveBack = true
		l.stale = h
	}
	if l.hold == h {
		l.hold = nil
		deadlines.stop(h)
		switch {
		case cause == nil && h.lost != nil:
			l.lost = h.lost
		case cause == nil:
			l.lost = neverLost
		case h.lost != nil:
			l.lost = h.lost
		default:
			l.lost = closedLost
		}
		if cause != nil {
			l.lostCause = cause
		}
	}
	if cause != nil && h.lost != nil {
		close(h.lost)
	}
	for c := range h.cancels {
		if cause == nil {
			(*c)(context.Canceled)
		} else {
			(*c)(cause)
		}
	}
	h.cancels = nil
}

// validity is how long after the start of a successful acquire or renewal
// request with this TTL the holder may rely on it.
func (l *Lock) validity(ttl time.Duration) time.Duration {
	ttl = ttl.Truncate(time.Millisecond)
	return ttl - l.opts.margin(ttl)
}

// extendDeadlineLocked moves h's validity deadline after a successful
// request that started at start and set the lease to ttl. l.mu must be held.
func (l *Lock) extendDeadlineLocked(h *hold, start time.Time, ttl time.Duration) {
	if d := start.Add(l.validity(ttl)); d.After(h.deadline) {
		h.deadline = d
		if l.hold == h {
			l.armDeadlineLocked(d)
		}
	}
}

// armDeadlineLocked makes the own hold's validity deadline fire at
// deadline (see deadlines). l.mu must be held.
func (l *Lock) armDeadlineLocked(deadline time.Time) {
	deadlines.arm(l.hold, deadline)
}

// endAtDeadline runs when h's validity deadline has come. It ends h as
// lost if it is still the own hold and no renewal has moved its deadline
// in the meantime, and reports whether it did; the caller then tells of
// the loss (lostReport) and stops renewing it (unschedule).
func (l *Lock) endAtDeadline(h *hold) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold != h {
		return false
	}
	if time.Until(h.deadline) > 0 {
		deadlines.arm(h, h.deadline) // a renewal moved the deadline
		return false
	}
	l.loseLocked(h, errExpired)
	return true
}

// renewed records a successful heartbeat renewal of h sent at start. An
// answer after the validity deadline is ignored: the holder may already have
// been told, by Held, that it has no lease, and the deadline timer is about
// to end the hold and stop its renewals.
func (l *Lock) renewed(h *hold, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.ended || !time.Now().Before(h.deadline) {
		return
	}
	l.extendDeadlineLocked(h, start, l.opts.ttl)
}

// renewRefused records that Redis says h is no longer on its key.
func (l *Lock) renewRefused(h *hold) {
	l.mu.Lock()
	l.loseLocked(h, errTaken)
	l.mu.Unlock()
	l.lostReport(h)
}

func (l *Lock) unschedule(h *hold) {
	if h.hb != nil {
		h.hb.remove(h)
	}
}

func errLost(reason string) error {
	return fmt.Errorf("%w: %s", ErrLockLost, reason)
}
