package redislock

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// An Observer is told what a Lock does, for metrics and traces: each
// acquire call, each release, each renewal round that renews the Lock, and
// each loss. Observe is called synchronously on the goroutine that did the
// work (the caller's, or the heartbeat's for renewals and losses found by
// it), never with a lock of this package held, so it may call the Lock; it
// must be fast, must not block, since the heartbeat's round waits for it,
// and must not panic (on the heartbeat's goroutine a panic ends the
// process; on a caller's it reaches the caller, after WithLock has given
// back its level). Events carry the lock's
// name; leave it out of metric labels unless names are few.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function to [Observer].
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// EventKind says what an [Event] reports.
type EventKind uint8

// Kinds of events.
const (
	// EventAcquire: an Acquire, TryAcquire or WithLock's acquire returned.
	EventAcquire EventKind = iota + 1
	// EventRelease: a Release (or WithLock's) gave up a level.
	EventRelease
	// EventRenewal: a renewal round renewed holds of the Lock.
	EventRenewal
	// EventLoss: a hold ended without being released.
	EventLoss
)

// Outcome is how an acquire call ended.
type Outcome uint8

// Outcomes of an acquire.
const (
	OutcomeAcquired  Outcome = iota + 1 // the lock is held
	OutcomeBusy                         // TryAcquire found another owner
	OutcomeTimedOut                     // the wait timeout or ctx's deadline passed
	OutcomeCancelled                    // ctx was cancelled
	OutcomeError                        // a Redis or argument error
)

// String returns the outcome's name, as a metric label would have it.
func (o Outcome) String() string {
	switch o {
	case OutcomeAcquired:
		return "acquired"
	case OutcomeBusy:
		return "busy"
	case OutcomeTimedOut:
		return "timed_out"
	case OutcomeCancelled:
		return "cancelled"
	case OutcomeError:
		return "error"
	}
	return "unknown"
}

// An Event is one thing a Lock did. Fields that do not apply to its Kind
// are zero. A hold's end is reported once: by an EventRelease with Last,
// or by an EventLoss — except for a last release that finds the hold
// already gone from the server, which reports both (the release, then the
// loss it found).
type Event struct {
	Kind      EventKind
	Primitive string // "mutex", "fair mutex", "semaphore", "rwlock-reader" or "rwlock-writer"
	Name, Key string
	// Ctx is the caller's context of an EventAcquire or EventRelease (for
	// a trace to link to), nil for the others.
	Ctx context.Context

	Outcome Outcome       // EventAcquire
	Fresh   bool          // EventAcquire: a new hold, not a re-entry or a borrowed level
	Wait    time.Duration // EventAcquire: how long the call took

	Last bool          // EventRelease: the last level, which ended the hold
	Held time.Duration // EventRelease, EventLoss: since the hold was acquired

	Holds    int           // EventRenewal: holds of this Lock in the round trip
	Failures int           // EventRenewal: of those, not renewed this time (to be retried)
	Refused  int           // EventRenewal: of those, found gone (each also an EventLoss)
	Duration time.Duration // EventRenewal: the round trip

	// Err is the acquire's or release's error, or the loss cause (it
	// matches ErrLockLost and says why).
	Err error
}

// WithObserver makes the Lock report its events to o. Default: none, which
// costs nothing.
func WithObserver(o Observer) Option {
	ref := &observerRef{o} // Locks made with one Option share a round's event
	return func(opts *options) {
		if o == nil {
			ref = nil
		}
		opts.observer = ref
	}
}

// observerRef is an Observer as options hold it: Locks given the same
// WithObserver value share the pointer, which the heartbeat groups a round's
// holds by (an Observer itself may not be comparable).
type observerRef struct{ Observer }

// WithLogger makes the Lock log what a caller cannot see otherwise: a
// renewal that failed while the hold lives on (Warn, with the error and the
// lease left), a hold lost (Error, with the cause), a lost hold given back
// to Redis (Info). Nothing is logged for operations that succeed. Default:
// no logging.
func WithLogger(l *slog.Logger) Option { return func(opts *options) { opts.logger = l } }

// observeAcquire reports an acquire call that started at start and took a
// level of h (nil if none) or failed with err.
func (l *Lock) observeAcquire(ctx context.Context, start time.Time, h *hold, err error) {
	e := Event{Kind: EventAcquire, Primitive: l.prim.name, Name: l.Name(), Key: l.key, Ctx: ctx, Wait: time.Since(start), Err: err}
	switch {
	case h != nil:
		e.Outcome = OutcomeAcquired
		e.Fresh = h.lock == l && !h.since.Before(start)
	case err == nil:
		e.Outcome = OutcomeBusy
	case errors.Is(err, context.DeadlineExceeded):
		e.Outcome = OutcomeTimedOut
	case errors.Is(err, context.Canceled):
		e.Outcome = OutcomeCancelled
	default:
		e.Outcome = OutcomeError
	}
	l.opts.observer.Observe(e)
}

// observeRenewals reports one renewal round trip that took d to the
// observers of holds, an event per lock key, with results[i] the outcome
// of holds[i].
func observeRenewals(holds []*hold, results []renewResult, d time.Duration) {
	type tally struct {
		ref                     *observerRef
		l                       *Lock
		holds, failing, refused int
	}
	var ts []tally
	var index map[*Lock]int // made for the first observed hold only
	for i, h := range holds {
		ref := h.lock.opts.observer
		if ref == nil || results[i] == renewGone {
			continue
		}
		if index == nil {
			index = make(map[*Lock]int)
		}
		k, ok := index[h.lock]
		if !ok {
			k = len(ts)
			index[h.lock] = k
			ts = append(ts, tally{ref: ref, l: h.lock})
		}
		ts[k].holds++
		switch results[i] {
		case renewFailed:
			ts[k].failing++
		case renewRefused:
			ts[k].refused++
		}
	}
	for _, t := range ts {
		t.ref.Observe(Event{Kind: EventRenewal, Primitive: t.l.prim.name, Name: t.l.Name(), Key: t.l.key,
			Holds: t.holds, Failures: t.failing, Refused: t.refused, Duration: d})
	}
}

// observeRelease reports the release of a level of h.
func (l *Lock) observeRelease(ctx context.Context, h *hold, last bool, err error) {
	if o := l.opts.observer; o != nil {
		o.Observe(Event{Kind: EventRelease, Primitive: l.prim.name, Name: l.Name(), Key: l.key, Ctx: ctx,
			Last: last, Held: time.Since(h.since), Err: err})
	}
}

// reportLosses tells of the last hold of l that was lost, if not yet. The
// public calls run it at their end, when they hold no lock of this package.
func (l *Lock) reportLosses() {
	l.mu.Lock()
	h := l.unreported
	l.unreported = nil
	l.mu.Unlock()
	if h != nil {
		l.lostReport(h)
	}
}

// lostReport tells the observer and the logger that h was lost. It must be
// called without any lock of this package held (l.op included); it tells of
// each hold once: endLocked arms it.
func (l *Lock) lostReport(h *hold) {
	l.mu.Lock()
	report := h.unreported
	h.unreported = false
	cause := h.cause
	l.mu.Unlock()
	if !report {
		return
	}
	held := time.Since(h.since)
	if lg := l.opts.logger; lg != nil {
		lg.Error("redislock: lock lost", "key", l.key, "primitive", l.prim.name, "token", h.token, "held", held, "cause", cause)
	}
	if o := l.opts.observer; o != nil {
		o.Observe(Event{Kind: EventLoss, Primitive: l.prim.name, Name: l.Name(), Key: l.key, Held: held, Err: cause})
	}
}

// renewFailed logs a renewal of h that failed with err while h lives on.
func (l *Lock) renewFailed(h *hold, err error) {
	lg := l.opts.logger
	if lg == nil {
		return
	}
	l.mu.Lock()
	left, ended := time.Until(h.deadline), h.ended
	l.mu.Unlock()
	if !ended {
		lg.Warn("redislock: renewal failed; the hold lives until its deadline unless one succeeds",
			"key", l.key, "primitive", l.prim.name, "token", h.token, "left", left, "err", err)
	}
}

// gaveBack logs that the key of h, a hold lost at its deadline, was asked
// to be deleted.
func (l *Lock) gaveBack(h *hold, err error) {
	if lg := l.opts.logger; lg != nil {
		lg.Info("redislock: gave back a lost hold's key", "key", l.key, "primitive", l.prim.name, "token", h.token, "err", err)
	}
}
