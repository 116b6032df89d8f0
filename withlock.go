package redislock

import (
	"context"
	"errors"
	"fmt"
)

// WithLock acquires the lock as [Lock.Acquire] does, runs fn, and releases
// the level it took, also when fn panics. The context fn receives carries
// the hold, so Acquire or WithLock on a Lock with the same key and client
// re-enters it, and is cancelled with cause ErrLockLost (see
// [context.Cause]) if the hold is lost. WithLock returns fn's error joined
// with the loss cause or the release error, or ErrInvalidArgument for a nil
// fn.
func (l *Lock) WithLock(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	if fn == nil {
		return fmt.Errorf("%w: nil function", ErrInvalidArgument)
	}
	if err := l.Acquire(ctx); err != nil {
		return err
	}
	holder := l.holder()
	fctx, cancel := context.WithCancelCause(withHolder(ctx, holder))
	key := holder.addCancel(&cancel)
	released := false
	defer func() {
		if !released {
			// fn panicked: give the level back, then let the panic go on.
			holder.removeCancel(key)
			cancel(nil)
			_ = l.Release(ctx)
		}
	}()
	fnErr := fn(fctx)
	holder.removeCancel(key)
	lost := context.Cause(fctx)
	cancel(nil)
	released = true
	relErr := l.Release(ctx)
	if errors.Is(lost, ErrLockLost) && !errors.Is(relErr, ErrLockLost) {
		relErr = errors.Join(relErr, lost)
	}
	return errors.Join(fnErr, relErr)
}

// holder returns the Lock whose hold l uses: a lender or l itself.
func (l *Lock) holder() *Lock {
	if lender := l.lender(); lender != nil {
		return lender
	}
	return l
}

func (l *Lock) lender() *Lock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.lenders); n > 0 {
		return l.lenders[n-1]
	}
	return nil
}

// borrow re-enters lender's hold on behalf of l.
func (l *Lock) borrow(ctx context.Context, lender *Lock) error {
	if err := lender.Acquire(ctx); err != nil {
		return err
	}
	l.mu.Lock()
	l.lenders = append(l.lenders, lender)
	l.mu.Unlock()
	return nil
}

// addCancel registers cancel to run when the current hold is lost; if there
// is no live hold it runs at once.
func (l *Lock) addCancel(cancel *context.CancelCauseFunc) *context.CancelCauseFunc {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hold
	if h == nil {
		(*cancel)(l.lostErr())
		return cancel
	}
	if h.cancels == nil {
		h.cancels = make(map[*context.CancelCauseFunc]struct{})
	}
	h.cancels[cancel] = struct{}{}
	return cancel
}

func (l *Lock) removeCancel(cancel *context.CancelCauseFunc) {
	l.mu.Lock()
	if h := l.hold; h != nil {
		delete(h.cancels, cancel)
	}
	l.mu.Unlock()
}
