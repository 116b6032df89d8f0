package redislock

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// A Lock is one owner's handle on a named lock in Redis. It is safe for
// concurrent use, but goroutines that share a Lock share its holds: for
// mutual exclusion between goroutines, give each its own Lock.
type Lock struct {
	client  redis.UniversalClient
	name    string
	key     string
	channel string // announces releases; see channelFor
	owner   string
	opts    options
	ttlMs   int64

	// Script arguments, built once: a request then allocates only inside
	// go-redis.
	keys                     []string // the lock key
	acquireKeys              []string // the lock key and its fencing counter
	argsFresh, argsReentry   []any
	argsRelease, argsLastRel []any

	// opMu serialises this Lock's requests to Redis, so that the local count
	// and the stored one change in the same order. It is held across round
	// trips; mu is not.
	opMu sync.Mutex

	mu        sync.Mutex
	hold      *hold           // the current hold, nil when none
	lost      <-chan struct{} // what Lost returns when there is no hold
	lostCause error           // why the last hold was lost, until the next acquire
	lenders   []*Lock         // holds borrowed through a context, innermost last
	deadline  *time.Timer     // fires at the current hold's validity deadline
}

// hold is one continuous tenure of a Lock, from a fresh acquire until the
// last release or the loss. Fields are guarded by the Lock's mu, except the
// ones the heartbeat owns.
type hold struct {
	lock     *Lock
	deadline time.Time     // local validity deadline, monotonic
	lost     chan struct{} // made when Lost asks for it
	cancels  map[*context.CancelCauseFunc]struct{}
	token    int64
	count    int32
	ended    bool

	// Guarded by the heartbeat's mu.
	removed bool
	index   int32 // in the heartbeat's queue; -1 when not queued
	hb      *heartbeat
	renewAt time.Time
}

// Channels for Lost when there is no hold: one that is never closed, and
// one that is, for a hold that was lost before anyone asked for its channel.
var (
	neverLost  = make(chan struct{})
	closedLost = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
)

// New returns a Lock on the key prefix+name. It makes no Redis call.
// It fails with ErrInvalidArgument when client is nil, name is empty, or an
// option is out of range.
func New(client redis.UniversalClient, name string, opts ...Option) (*Lock, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%w: empty lock name", ErrInvalidArgument)
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.minReplicas > 0 {
		switch client.(type) {
		case *redis.Client, *redis.ClusterClient:
		default:
			return nil, fmt.Errorf("%w: WithMinReplicas needs a *redis.Client or *redis.ClusterClient, not %T", ErrInvalidArgument, client)
		}
	}
	if !o.ownerSet {
		o.owner = uuid.NewString()
	}
	l := &Lock{
		client: client,
		name:   name,
		key:    o.prefix + name,
		owner:  o.owner,
		opts:   o,
		ttlMs:  o.ttl.Milliseconds(),
		lost:   neverLost,
	}
	l.channel = channelFor(l.key)
	l.keys = []string{l.key}
	l.acquireKeys = []string{l.key, tokenKeyFor(l.key)}
	owner, ttl, counterTTL := any(l.owner), any(l.ttlMs), any(TokenCounterTTL.Milliseconds())
	l.argsFresh = []any{owner, ttl, "0", counterTTL}
	l.argsReentry = []any{owner, ttl, "1", counterTTL}
	l.argsRelease = []any{owner, "0"}
	publish := "publish"
	if _, ok := client.(*redis.ClusterClient); ok {
		publish = "spublish" // heard on the channel's shard only
	}
	l.argsLastRel = []any{owner, "1", l.channel, publish}
	return l, nil
}

// checkClient rejects nil clients and client values that cannot be compared,
// since the heartbeat and context re-entry identify a client by equality.
func checkClient(client redis.UniversalClient) error {
	if client == nil {
		return fmt.Errorf("%w: nil client", ErrInvalidArgument)
	}
	v := reflect.ValueOf(client)
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		if v.IsNil() {
			return fmt.Errorf("%w: nil client of type %T", ErrInvalidArgument, client)
		}
	}
	if !v.Type().Comparable() {
		return fmt.Errorf("%w: client of type %T is not comparable; pass a pointer", ErrInvalidArgument, client)
	}
	return nil
}

// Name returns the lock name given to [New].
func (l *Lock) Name() string { return l.name }

// Key returns the Redis key of the lock: the key prefix followed by the name.
func (l *Lock) Key() string { return l.key }

// Owner returns the owner identity this Lock stores in Redis.
func (l *Lock) Owner() string { return l.owner }

// Held reports whether this Lock holds the lock now, by its own account: it
// turns false at release, on loss, and when the local validity deadline has
// passed. It makes no Redis call.
func (l *Lock) Held() bool {
	if lender := l.lender(); lender != nil {
		return lender.Held()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hold != nil && time.Now().Before(l.hold.deadline)
}

// Count returns how many reentrant levels this Lock holds (0 when not held).
func (l *Lock) Count() int {
	l.mu.Lock()
	n := len(l.lenders)
	if l.hold != nil {
		n += int(l.hold.count)
	}
	l.mu.Unlock()
	return n
}

// Token returns the fencing token of the current hold, or 0 when not held.
// Every fresh acquisition of a lock name, by any Lock, gets a larger token
// than the ones before; re-entering keeps it. Pass it to the resource the
// lock protects and have that resource refuse a token lower than one it has
// seen: that, not the lease, makes a stalled former holder harmless. Tokens
// come with the acquire round trip. They can go backwards only if Redis
// loses the counter's last increment (a failover to a replica that had not
// received it, see [WithMinReplicas]) or if the counter expired (after
// [TokenCounterTTL] without a fresh acquisition) while the server's clock was
// set back.
func (l *Lock) Token() int64 {
	if lender := l.lender(); lender != nil {
		return lender.Token()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold == nil {
		return 0
	}
	return l.hold.token
}

// Lost returns a channel that is closed when the current hold is lost:
// another owner took the key, the key vanished, or the lease ran out before
// a renewal succeeded. A release does not close it. Call Lost after the
// acquire it should watch; before the first acquire it returns a channel that
// is never closed.
func (l *Lock) Lost() <-chan struct{} {
	if lender := l.lender(); lender != nil {
		return lender.Lost()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.hold; h != nil {
		if h.lost == nil {
			h.lost = make(chan struct{})
		}
		return h.lost
	}
	return l.lost
}

// Acquire takes the lock, or another reentrant level of it, waiting while
// another owner holds it. It blocks until the lock is held, ctx is done, or
// the wait timeout of [WithWaitTimeout] passes; the latter two return an
// error matching ErrNotAcquired and the context error
// (context.DeadlineExceeded for the wait timeout). A Redis error ends
// the wait and is returned as is (ErrWrongType when the key holds another
// type). A failed Acquire leaves the held levels as they were.
//
// If ctx comes from [Lock.WithLock] on a Lock with the same key and client,
// Acquire re-enters that hold instead of waiting for it.
func (l *Lock) Acquire(ctx context.Context) error {
	if lender := lenderFor(ctx, l); lender != nil {
		return l.borrow(ctx, lender)
	}
	if l.opts.waitSet && l.opts.waitTimeout == 0 {
		ok, _, err := l.attempt(ctx)
		if !ok && err == nil {
			err = errors.Join(ErrNotAcquired, context.DeadlineExceeded)
		}
		return err
	}
	if l.opts.waitSet {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.opts.waitTimeout)
		defer cancel()
	}
	// Try at once, unless others in this process already wait for the lock:
	// then queue behind them.
	if l.holding() || !queued(l.client, l.channel) {
		ok, _, err := l.attempt(ctx)
		if ok || err != nil {
			return err
		}
	}
	return l.wait(ctx)
}

func (l *Lock) holding() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hold != nil
}

// TryAcquire makes one attempt to take the lock, or another reentrant level
// of it, and never waits. It returns false and a nil error when another
// owner holds the lock. When ctx is done it returns an error matching
// ErrNotAcquired and the context error.
func (l *Lock) TryAcquire(ctx context.Context) (bool, error) {
	if lender := lenderFor(ctx, l); lender != nil {
		err := l.borrow(ctx, lender)
		return err == nil, err
	}
	ok, _, err := l.attempt(ctx)
	return ok, err
}

// attempt sends one acquire request. It reports whether this Lock holds the
// lock afterwards and, if not, the other holder's remaining lease.
func (l *Lock) attempt(ctx context.Context) (bool, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, errors.Join(ErrNotAcquired, ctxErr(ctx))
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()

	l.mu.Lock()
	h := l.hold
	l.mu.Unlock()
	if h != nil {
		var err error
		if h, err = l.liveHold(); err != nil {
			return false, 0, errors.Join(ErrNotAcquired, err)
		}
	}

	start := time.Now()
	g, err := l.runAcquire(ctx, h != nil)
	if err != nil {
		if h == nil && !l.opts.ownerSet && !isServerError(err) {
			// The request may have taken the lock before it failed. The owner
			// is unique to this Lock, so giving it up is safe.
			l.sendRelease(ctx, true)
		}
		if ctx.Err() != nil {
			err = errors.Join(ErrNotAcquired, err)
		}
		return false, 0, err
	}
	if h != nil {
		return l.reentered(h, g, start)
	}
	if !g.ok {
		return false, g.pttl, nil
	}
	if g.replicas < int64(l.opts.minReplicas) {
		l.sendRelease(ctx, true)
		return false, 0, fmt.Errorf("%w: %d of %d replicas acknowledged the acquire within %v",
			ErrNotReplicated, g.replicas, l.opts.minReplicas, l.opts.replicaTimeout)
	}
	deadline := start.Add(l.validity(l.opts.ttl))
	if !time.Now().Before(deadline) {
		l.sendRelease(ctx, true)
		return false, 0, fmt.Errorf("%w: the acquire round trip outlasted the %v lease", ErrNotAcquired, l.opts.ttl)
	}
	h = &hold{lock: l, count: 1, token: g.token, deadline: deadline, index: -1}
	if !l.opts.noHeartbeat {
		schedule(l.client, h, start.Add(l.opts.heartbeat))
	}
	l.mu.Lock()
	l.hold, l.lostCause = h, nil
	l.armDeadlineLocked(h.deadline)
	l.mu.Unlock()
	return true, 0, nil
}

// reentered applies the answer n to a re-entry of hold h sent at start.
func (l *Lock) reentered(h *hold, g grant, start time.Time) (bool, time.Duration, error) {
	l.mu.Lock()
	if h.ended {
		l.mu.Unlock()
		return false, 0, errors.Join(ErrNotAcquired, l.lostErr())
	}
	if !g.ok {
		l.loseLocked(h, errLost("the key is gone or held by another owner"))
		err := l.lostCause
		l.mu.Unlock()
		l.unschedule(h)
		return false, 0, errors.Join(ErrNotAcquired, err)
	}
	h.count++
	l.extendDeadlineLocked(h, start, l.opts.ttl)
	l.mu.Unlock()
	return true, 0, nil
}

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
	if n < 0 {
		l.mu.Lock()
		if !final {
			l.loseLocked(h, errLost("the key is gone or held by another owner"))
		} else {
			// Ended as released, yet it was lost before: say so.
			l.lostCause = errLost("the key was gone or held by another owner at release")
			if h.lost != nil {
				close(h.lost)
			}
			l.lost = closedLost
		}
		err := l.lostErr()
		l.mu.Unlock()
		if !final {
			l.unschedule(h)
		}
		return err
	}
	return nil
}

// sendRelease sends the release request detached from ctx's cancellation and
// bounded by DefaultReleaseTimeout.
func (l *Lock) sendRelease(ctx context.Context, final bool) (int64, error) {
	args := l.argsRelease
	if final {
		args = l.argsLastRel
	}
	n, err := releaseScript.Run(detach(ctx, DefaultReleaseTimeout), l.client, l.keys, args...).Int64()
	if err != nil {
		return 0, l.wrapRedisErr("release", err)
	}
	return n, nil
}

// Extend sets the lease of the current hold to ttl from now (0: the lock's
// TTL) and moves the validity deadline with it. With the heartbeat on, the
// next renewal sets the lease back to the lock's TTL. It returns
// ErrInvalidArgument for a ttl below 1 ms (other than 0), and ErrNotHeld,
// joined with the loss cause when the hold was lost (matching ErrLockLost).
func (l *Lock) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl == 0 {
		ttl = l.opts.ttl
	}
	if ttl < time.Millisecond || ttl <= margin(ttl) {
		return fmt.Errorf("%w: extend TTL %v is below 1ms or not above the safety margin %v", ErrInvalidArgument, ttl, margin(ttl))
	}
	if lender := l.lender(); lender != nil {
		return lender.Extend(ctx, ttl)
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	h, err := l.liveHold()
	if err != nil {
		return err
	}
	start := time.Now()
	args := []any{l.owner, ttl.Milliseconds()}
	var v any
	var replicas int64
	if l.opts.minReplicas > 0 {
		v, replicas, err = l.evalReplicated(ctx, extendScript, l.keys, args)
	} else {
		v, err = extendScript.Run(ctx, l.client, l.keys, args...).Result()
	}
	if err != nil {
		return l.wrapRedisErr("extend", err)
	}
	res, _ := v.([]any)
	l.mu.Lock()
	if h.ended {
		err := l.lostErr()
		l.mu.Unlock()
		return err
	}
	if len(res) != 1 || res[0] != int64(1) {
		l.loseLocked(h, errLost("the key is gone or held by another owner"))
		err := l.lostErr()
		l.mu.Unlock()
		l.unschedule(h)
		return err
	}
	if replicas < int64(l.opts.minReplicas) {
		l.mu.Unlock()
		return fmt.Errorf("%w: %d of %d replicas acknowledged the extension within %v; the validity deadline stays",
			ErrNotReplicated, replicas, l.opts.minReplicas, l.opts.replicaTimeout)
	}
	h.deadline = start.Add(l.validity(ttl))
	l.armDeadlineLocked(h.deadline)
	l.mu.Unlock()
	return nil
}

// TTL returns the remaining lease of the current hold as Redis reports it,
// or a negative duration if the key has no expiry. It returns ErrNotHeld
// (joined with the loss cause, if any) when this owner does not hold the key.
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	if lender := l.lender(); lender != nil {
		return lender.TTL(ctx)
	}
	l.opMu.Lock()
	defer l.opMu.Unlock()
	h, err := l.liveHold()
	if err != nil {
		return 0, err
	}
	n, err := pttlScript.Run(ctx, l.client, l.keys, l.owner).Int64()
	if err != nil {
		return 0, l.wrapRedisErr("ttl", err)
	}
	if n == -2 {
		l.mu.Lock()
		if !h.ended {
			l.loseLocked(h, errLost("the key is gone or held by another owner"))
		}
		err := l.lostErr()
		l.mu.Unlock()
		l.unschedule(h)
		return 0, err
	}
	if n < 0 {
		return -1, nil
	}
	return time.Duration(n) * time.Millisecond, nil
}

// WithLock acquires the lock as [Lock.Acquire] does, runs fn, and releases
// the level it took, also when fn panics. The context fn receives carries
// the hold, so Acquire or WithLock on a Lock with the same key and client
// re-enters it, and is cancelled with cause ErrLockLost (see
// [context.Cause]) if the hold is lost. WithLock returns fn's error joined
// with the loss cause or the release error.
func (l *Lock) WithLock(ctx context.Context, fn func(ctx context.Context) error) (err error) {
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

// liveHold returns the current hold, or the error to report when there is
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
		l.loseLocked(h, errLost("the lease ran out before it was renewed"))
		err := l.lostErr()
		l.mu.Unlock()
		l.unschedule(h) // never with mu held: it may wait for the heartbeat
		return nil, err
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
	h.ended = true
	if l.hold == h {
		l.hold = nil
		l.deadline.Stop()
	}
	switch {
	case cause == nil && h.lost != nil:
		l.lost = h.lost
	case cause == nil:
		l.lost = neverLost
	case h.lost != nil:
		close(h.lost)
		l.lost = h.lost
	default:
		l.lost = closedLost
	}
	if cause != nil {
		l.lostCause = cause
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
	return ttl - margin(ttl)
}

// extendDeadlineLocked moves h's validity deadline after a successful
// request that started at start and set the lease to ttl. l.mu must be held.
func (l *Lock) extendDeadlineLocked(h *hold, start time.Time, ttl time.Duration) {
	if d := start.Add(l.validity(ttl)); d.After(h.deadline) {
		h.deadline = d
		l.armDeadlineLocked(d)
	}
}

func (l *Lock) armDeadlineLocked(deadline time.Time) {
	d := time.Until(deadline)
	if l.deadline == nil {
		l.deadline = time.AfterFunc(d, l.deadlinePassed)
		return
	}
	l.deadline.Reset(d)
}

// deadlinePassed runs on the validity timer. It declares the hold lost if
// no renewal has moved its deadline in the meantime.
func (l *Lock) deadlinePassed() {
	l.mu.Lock()
	h := l.hold
	if h == nil {
		l.mu.Unlock()
		return
	}
	if d := time.Until(h.deadline); d > 0 {
		l.deadline.Reset(d) // a renewal moved the deadline
		l.mu.Unlock()
		return
	}
	l.loseLocked(h, errLost("the lease ran out before it was renewed"))
	l.mu.Unlock()
	l.unschedule(h)
}

// renewed records a successful heartbeat renewal of h sent at start.
func (l *Lock) renewed(h *hold, start time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.ended {
		return
	}
	if !start.Before(h.deadline) {
		// Too late: the holder may already have been told it has no lease.
		l.loseLocked(h, errLost("the lease ran out before it was renewed"))
		return
	}
	l.extendDeadlineLocked(h, start, l.opts.ttl)
}

// renewRefused records that Redis says h's owner no longer holds the key.
func (l *Lock) renewRefused(h *hold) {
	l.mu.Lock()
	l.loseLocked(h, errLost("the key is gone or held by another owner"))
	l.mu.Unlock()
}

func (l *Lock) unschedule(h *hold) {
	if h.hb != nil {
		h.hb.remove(h)
	}
}

func errLost(reason string) error {
	return fmt.Errorf("%w: %s", ErrLockLost, reason)
}

// wrapRedisErr names the operation and key, and maps a key of the wrong
// type to ErrWrongType.
func (l *Lock) wrapRedisErr(op string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && isWrongType(rerr.Error()) {
		return fmt.Errorf("redislock: %s %q: %w: %w", op, l.key, ErrWrongType, err)
	}
	return fmt.Errorf("redislock: %s %q: %w", op, l.key, err)
}

func isWrongType(msg string) bool {
	const p = "WRONGTYPE"
	return len(msg) >= len(p) && msg[:len(p)] == p
}

// isServerError reports whether err is an error reply from Redis, which
// means the request was answered and the script changed nothing.
func isServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}
