package redislock

import "context"

// ctxHold records in a context that a Lock holds its lock for the code
// running with that context. Entries chain to those of outer WithLock calls.
type ctxHold struct {
	lock   *Lock
	parent *ctxHold
}

type ctxHoldKey struct{}

func withHolder(ctx context.Context, l *Lock) context.Context {
	parent, _ := ctx.Value(ctxHoldKey{}).(*ctxHold)
	return context.WithValue(ctx, ctxHoldKey{}, &ctxHold{lock: l, parent: parent})
}

// lenderFor returns the Lock whose hold, carried by ctx, l should re-enter:
// another Lock on the same key through the same client. It returns nil when
// ctx carries no such hold or carries l's own.
func lenderFor(ctx context.Context, l *Lock) *Lock {
	e, _ := ctx.Value(ctxHoldKey{}).(*ctxHold)
	for ; e != nil; e = e.parent {
		if e.lock == l {
			return nil
		}
		if e.lock.key == l.key && e.lock.client == l.client {
			return e.lock
		}
	}
	return nil
}
