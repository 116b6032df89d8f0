package redislock

import (
	"context"
	"time"
)

// ctxHold records in a context that a hold covers the code running with
// that context. Entries chain to those of outer WithLock calls.
type ctxHold struct {
	hold   *hold
	parent *ctxHold
}

type ctxHoldKey struct{}

func withHolder(ctx context.Context, h *hold) context.Context {
	parent, _ := ctx.Value(ctxHoldKey{}).(*ctxHold)
	return context.WithValue(ctx, ctxHoldKey{}, &ctxHold{hold: h, parent: parent})
}

// lenderHold returns the hold, carried by ctx, that l should borrow a level
// of: a hold of another Lock of the same primitive on the same key through
// the same client (an RWLock's reader never borrows a writer's hold). It
// returns nil when ctx carries no such hold or carries one of l's own.
//
// A Lock that has a hold of its own re-enters that one: for a lock that
// several owners hold at once (a semaphore, readers), a ctx may carry
// another owner's hold while this Lock holds its own, and its levels must
// stay with its own hold so that its releases give them back in order.
func (l *Lock) lenderHold(ctx context.Context) *hold {
	if l.holding() {
		return nil
	}
	e, _ := ctx.Value(ctxHoldKey{}).(*ctxHold)
	for ; e != nil; e = e.parent {
		lender := e.hold.lock
		if lender == l {
			break
		}
		if lender.key == l.key && lender.client == l.client && lender.prim.kin() == l.prim.kin() && lender.limit == l.limit {
			if e.hold.isEnded() {
				break // a WithLock that has returned: acquire as if ctx carried nothing
			}
			return e.hold
		}
	}
	if h := l.liveBorrow(); h != nil {
		return h // re-entering a Lock that holds a borrowed level
	}
	return nil
}

// detach returns a context that keeps ctx's values but not its cancellation
// or deadline, with a deadline timeout from now instead, also for a ctx that
// has none: with ContextTimeoutEnabled and no ReadTimeout, that deadline is
// the only bound.
//
// The deadline is only advisory: go-redis bounds its socket I/O by it when
// the client has ContextTimeoutEnabled (otherwise by its ReadTimeout and
// WriteTimeout), and nothing else needs to be told when it passes, so no
// timer is started.
func detach(ctx context.Context, timeout time.Duration) context.Context {
	return detached{ctx: ctx, deadline: time.Now().Add(timeout).UnixNano()}
}

// detached keeps its deadline in Unix nanoseconds, without the monotonic
// reading, which an advisory deadline can do without: the boxed context of
// every release takes 24 bytes, not 48.
type detached struct {
	ctx      context.Context
	deadline int64
}

func (d detached) Deadline() (time.Time, bool) { return time.Unix(0, d.deadline), true }
func (d detached) Done() <-chan struct{}       { return nil }
func (d detached) Err() error                  { return nil }
func (d detached) Value(key any) any           { return d.ctx.Value(key) }
