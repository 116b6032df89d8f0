package redislock

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"
)

// wait acquires the lock after a failed attempt. It queues behind the other
// waiters of this process for the same lock; at the head of the queue it
// confirms the release subscription, then tries each time it is woken: by a
// release message, by the previous head leaving, or by its timer, which
// never sleeps longer than the holder's remaining lease or the backoff, so a
// release that announces nothing (an expiry, the Python original, a lost
// message) is still noticed in bounded time. A head promoted because the
// previous one took the lock knows that hold's lease without asking: before
// its first try it sleeps until the release message, and no longer than
// that lease or the retry maximum.
//
// A release in this process may hand the lock to the head (see
// handoff.go): then it takes no request of its own, and a wait that ends
// meanwhile keeps the hold handed to it, or, if the hand-off is still in
// flight, leaves it to the releaser to give back.
func (l *Lock) wait(ctx context.Context) (h *hold, err error) {
	n, w := join(l)
	defer func() {
		if err != nil {
			if g := w.abandon(); g != nil {
				h, err = g, nil
			}
		}
		var lease time.Duration // of the hold taken, for the next head
		if h == nil {
			l.leave(ctx)
		} else if !l.prim.shared {
			// Leaving with a lock others may share lets the next waiter
			// try at once, as leaving without it does.
			lease = l.opts.ttl
		}
		n.leave(w, lease)
	}()

	b := newBackoff(l.opts.retryMin, l.opts.retryMax)
	defer b.stop()
	confirmed := false
	for {
		if h, _ := w.handed(); h != nil {
			return h, nil
		}
		head, holderUntil := n.head(w)
		if !head && (l.bypass == nil || !l.bypass()) {
			if err := b.sleep(ctx, l.opts.retryMax, w.wake); err != nil {
				return nil, errors.Join(ErrNotAcquired, err)
			}
			continue
		}
		if !confirmed {
			// Subscribed before trying, so no release can fall between the
			// try and the subscription. Without a confirmation in time, poll.
			if err := b.sleep(ctx, l.opts.retryMax, w.q.ready); err != nil {
				return nil, errors.Join(ErrNotAcquired, err)
			}
			confirmed = true
		}
		if d := time.Until(holderUntil); d > 0 {
			// As long as a waiter behind the head would: the release message
			// or the end of the lease wakes it, not the backoff's floor.
			if err := b.sleep(ctx, min(d, l.opts.retryMax), w.wake); err != nil {
				return nil, errors.Join(ErrNotAcquired, err)
			}
		}
		h, pttl, err := l.attemptFor(ctx, true, w)
		if h != nil {
			return h, nil
		}
		if err != nil && !retryable(err) {
			return nil, err
		}
		if err == nil && pttl == 0 && l.prim.yield {
			n.yield(w)
		}
		wake := w.wake
		if errors.Is(err, errTooLate) {
			// Giving the grant back announces a release, which would wake
			// this waiter at once: back off in full instead.
			wake = nil
		}
		if err := b.sleep(ctx, b.next(pttl), wake); err != nil {
			return nil, errors.Join(ErrNotAcquired, err)
		}
	}
}

// waitFair acquires a fair lock after an attempt that queued this Lock in
// Redis. Every waiter of a fair lock tries on its own, not only the local
// head: when a release names it, when its sleep ends — the holder's
// remaining lease for the queue's head, a third of its waiter lease for the
// others, as the acquire script says — so that its attempts renew its
// waiter lease. One that leaves without the lock takes itself out of the
// queue.
// Its first attempt follows the subscription, so that no release naming it
// can come between; it may also be the caller's first (see acquire).
// A release in this process may hand it the lock, as in wait.
func (l *Lock) waitFair(ctx context.Context) (h *hold, err error) {
	n, w := join(l)
	defer func() {
		if err != nil {
			if g := w.abandon(); g != nil {
				h, err = g, nil
			}
		}
		if h == nil {
			l.leave(ctx)
		}
		n.leave(w, -1)
	}()
	b := newBackoff(l.opts.retryMin, l.opts.retryMax)
	defer b.stop()
	// Subscribed before trying again, so that no release naming this Lock
	// falls between its first try and the subscription.
	if err := b.sleep(ctx, l.opts.retryMax, w.q.ready); err != nil {
		return nil, errors.Join(ErrNotAcquired, err)
	}
	for {
		h, pttl, err := l.attemptFor(ctx, true, w)
		if h != nil {
			return h, nil
		}
		if err != nil && !retryable(err) {
			return nil, err
		}
		d := pttl
		if d <= 0 {
			d = b.next(0)
		}
		if err := b.sleep(ctx, d, w.wake); err != nil {
			return nil, errors.Join(ErrNotAcquired, err)
		}
	}
}

// leave runs the primitive's leave script after a wait that did not get
// the lock: best effort, detached from ctx's cancellation.
func (l *Lock) leave(ctx context.Context) {
	if l.prim.leave == nil {
		return
	}
	_ = l.prim.leave.Run(detach(ctx, DefaultReleaseTimeout), l.client, l.acquireKeys, l.owner, l.channel, publishVerb(l.client)).Err()
}

// publishVerb is the command that announces on a release channel through
// client: PUBLISH, or SPUBLISH on a cluster (heard on the channel's shard
// only). It is boxed once, so that a command built with it allocates
// nothing for it.
func publishVerb(client redis.UniversalClient) any {
	if _, ok := client.(*redis.ClusterClient); ok {
		return spublishVerb
	}
	return plainPublishVerb
}

var plainPublishVerb, spublishVerb any = "publish", "spublish"

// backoff paces the attempts of one waiter: each sleep is drawn uniformly
// from [min, cap], where cap doubles from min up to max with every attempt
// (full jitter above the floor), and is never longer than the holder's
// remaining lease, so a lock that expires is tried as it frees.
type backoff struct {
	min, max time.Duration
	cap      time.Duration
	timer    *time.Timer
}

func newBackoff(min, max time.Duration) backoff {
	return backoff{min: min, max: max, cap: min}
}

// next returns the sleep before the next attempt, given the holder's
// remaining lease as the last attempt saw it (0 if unknown).
func (b *backoff) next(pttl time.Duration) time.Duration {
	d := b.min
	if b.cap > b.min {
		d += time.Duration(rand.Int64N(int64(b.cap-b.min) + 1))
	}
	if b.cap < b.max {
		b.cap = min(2*b.cap, b.max)
	}
	if pttl > 0 && pttl < d {
		d = pttl
	}
	return d
}

// sleep waits for d, a value on wake, or ctx to be done; only the last
// returns an error, the context's.
func (b *backoff) sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if b.timer == nil {
		b.timer = time.NewTimer(d)
	} else {
		b.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		b.timer.Stop()
		return ctxErr(ctx)
	case <-wake:
		b.timer.Stop()
		return nil
	case <-b.timer.C:
		return nil
	}
}

func (b *backoff) stop() {
	if b.timer != nil {
		b.timer.Stop()
	}
}

// ctxErr is ctx.Err(), joined with the cancellation cause when one was given,
// so callers can match either.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return errors.Join(err, cause)
	}
	return err
}
