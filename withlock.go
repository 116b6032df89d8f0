package redislock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// WithLock acquires the lock as [Lock.Acquire] does, runs fn, and releases
// the level it took, also when fn panics. The context fn receives carries
// the hold, so Acquire or WithLock on a Lock with the same key and client
// re-enters it, and is cancelled if the hold is lost, with a cause that
// matches ErrLockLost: errors.Is(context.Cause(ctx), ErrLockLost). WithLock
// returns fn's error joined with the loss cause or the release error, or
// ErrInvalidArgument for a nil fn.
func (l *Lock) WithLock(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if fn == nil {
		return fmt.Errorf("%w: nil function", ErrInvalidArgument)
	}
	defer l.reportLosses()
	var start time.Time
	if l.opts.observer != nil {
		start = time.Now()
	}
	h, err := l.acquire(ctx)
	if err != nil {
		if l.opts.observer != nil {
			l.observeAcquire(ctx, start, nil, err)
		}
		return err
	}
	defer h.lock.reportLosses()
	fctx, cancel := context.WithCancelCause(withHolder(ctx, h))
	key := h.addCancel(&cancel)
	released := false
	defer func() {
		if !released {
			// fn or the observer panicked: give the level back, then let
			// the panic go on.
			h.removeCancel(key)
			cancel(nil)
			_ = l.releaseHold(ctx, h)
		}
	}()
	if l.opts.observer != nil {
		l.observeAcquire(ctx, start, h, nil)
	}
	fnErr := fn(fctx)
	h.removeCancel(key)
	lost := context.Cause(fctx)
	cancel(nil)
	released = true
	relErr := l.releaseHold(ctx, h)
	if errors.Is(lost, ErrLockLost) && !errors.Is(relErr, ErrLockLost) {
		relErr = errors.Join(relErr, lost)
	}
	return errors.Join(fnErr, relErr)
}

// current returns the hold this Lock acts on: its own; else the newest
// borrowed one that has not ended; else the newest borrowed one (ended);
// nil when it has none.
func (l *Lock) current() *hold {
	l.mu.Lock()
	if h := l.hold; h != nil || len(l.borrows) == 0 {
		l.mu.Unlock()
		return h
	}
	bs := slices.Clone(l.borrows)
	l.mu.Unlock()
	// The lenders' state is read without l.mu: a lender may borrow from a
	// later hold of this Lock, and two Locks must never wait for each
	// other's mutex.
	for i := len(bs) - 1; i >= 0; i-- {
		if !bs[i].isEnded() {
			return bs[i]
		}
	}
	return bs[len(bs)-1]
}

// liveBorrow returns the newest borrowed hold that has not ended, when l
// has no own hold; nil otherwise.
func (l *Lock) liveBorrow() *hold {
	h := l.current()
	if h == nil || h.lock == l || h.isEnded() {
		return nil
	}
	return h
}

// addCancel registers cancel to run when h ends; if it has ended, cancel
// runs at once.
func (h *hold) addCancel(cancel *context.CancelCauseFunc) *context.CancelCauseFunc {
	l := h.lock
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.ended {
		(*cancel)(h.notHeldErr())
		return cancel
	}
	if h.cancels == nil {
		h.cancels = make(map[*context.CancelCauseFunc]struct{})
	}
	h.cancels[cancel] = struct{}{}
	return cancel
}

func (h *hold) removeCancel(cancel *context.CancelCauseFunc) {
	h.lock.mu.Lock()
	delete(h.cancels, cancel)
	h.lock.mu.Unlock()
}
