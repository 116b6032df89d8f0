package redislock

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// backoff paces the attempts of one Acquire call: each sleep is drawn
// uniformly from [min, cap], where cap doubles from min up to max with every
// attempt (full jitter above the floor), and is never longer than the
// holder's remaining lease, so a lock that expires is retried as it frees.
type backoff struct {
	min, max time.Duration
	cap      time.Duration
	timer    *time.Timer
}

func newBackoff(min, max time.Duration) backoff {
	return backoff{min: min, max: max, cap: min}
}

// wait sleeps before the next attempt. pttl is the holder's remaining lease
// as the last attempt saw it (0 if unknown). It returns early with the
// context's error when ctx is done.
func (b *backoff) wait(ctx context.Context, pttl time.Duration) error {
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
	if b.timer == nil {
		b.timer = time.NewTimer(d)
	} else {
		b.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		b.timer.Stop()
		return ctxErr(ctx)
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
