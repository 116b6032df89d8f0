package redislock

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Defaults for the options of [New].
const (
	// DefaultTTL is the lease a hold gets on every acquire and renewal.
	DefaultTTL = 30 * time.Second
	// DefaultKeyPrefix is prepended to the lock name to form the Redis key,
	// as the Python original does.
	DefaultKeyPrefix = "lock:"
	// DefaultRetryMin and DefaultRetryMax bound the backoff between two
	// acquire attempts while waiting.
	DefaultRetryMin = 2 * time.Millisecond
	DefaultRetryMax = 250 * time.Millisecond
	// DefaultClockDrift is the fraction of every lease a holder gives up
	// for a server clock that runs faster than its own (see
	// [WithClockDrift]).
	DefaultClockDrift = 0.01
	// DefaultReleaseTimeout bounds the release request, which is sent even
	// when the caller's context is already done.
	DefaultReleaseTimeout = 5 * time.Second
	// ReleaseLatchTTL is how long a last release leaves a small record of
	// itself (the released hold's token) next to the lock key, so that a
	// release the client retries after a lost reply reports success rather
	// than a loss. Nothing else of a lock name stays in Redis after its
	// last release.
	ReleaseLatchTTL = 2 * DefaultReleaseTimeout
)

// An Option configures a [Lock] in [New].
type Option func(*options)

type options struct {
	ttl          time.Duration
	ttlMs        int64         // ttl in the requests' milliseconds
	heartbeat    time.Duration // 0: TTL/3
	heartbeatSet bool
	noHeartbeat  bool
	noHandOff    bool
	waitTimeout  time.Duration
	waitSet      bool // without it, wait until ctx is done
	retryMin     time.Duration
	retryMax     time.Duration
	prefix       string
	owner        string // "": a random UUID; "" again once New has read it
	ownerSet     bool
	ownerUnique  bool // the owner is each Lock's alone: generated, not given

	drift          float64
	fair           bool
	observer       *observerRef
	logger         *slog.Logger
	minReplicas    int // 0: no WAIT
	replicaTimeout time.Duration
	replicasSet    bool
}

// WithTTL sets the lease of every acquire and renewal, at millisecond
// resolution. Default: [DefaultTTL]. It must be above the safety margin,
// the clock drift's share of the TTL (1% by default, see [WithClockDrift])
// plus 2 ms, which the holder subtracts from every lease.
func WithTTL(ttl time.Duration) Option { return func(o *options) { o.ttl = ttl } }

// WithHeartbeat sets how often the heartbeat renews a held lock.
// Default: TTL/3 (at most half the validity, see below). It must be
// positive and at most half the validity, the TTL less its safety margin, so
// that a renewal that fails can be tried again before the lease runs out.
func WithHeartbeat(interval time.Duration) Option {
	return func(o *options) { o.heartbeat, o.heartbeatSet = interval, true }
}

// WithoutHeartbeat turns the heartbeat off: a hold then lasts one TTL from
// its acquire or last [Lock.Extend] and is reported lost when that runs out.
// Default: the heartbeat is on.
func WithoutHeartbeat() Option { return func(o *options) { o.noHeartbeat = true } }

// WithoutHandOff stops the Lock's releases handing the lock to a waiter of
// the same process, and the Lock being handed the lock by another's
// release: every release frees the lock for whoever tries first. Use it on
// the Locks of names that processes which record nothing of their waiting
// also wait for: the Python original polls, and Locks of one process that
// hand the lock to each other free it only every 17th release. Default: a
// last release hands the lock to the next waiter of its process when
// nobody else was refused meanwhile (see the package documentation).
func WithoutHandOff() Option { return func(o *options) { o.noHandOff = true } }

// WithWaitTimeout bounds how long [Lock.Acquire] waits; 0 means one attempt
// and no wait. Default: no bound, wait until the context is done.
func WithWaitTimeout(d time.Duration) Option {
	return func(o *options) { o.waitTimeout, o.waitSet = d, true }
}

// WithRetryBackoff sets the bounds of the exponential backoff between
// acquire attempts while waiting. Default: [DefaultRetryMin],
// [DefaultRetryMax]. Both must be positive and min ≤ max.
func WithRetryBackoff(min, max time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = min, max }
}

// WithKeyPrefix sets the prefix of the Redis key. Default: [DefaultKeyPrefix].
// It must not be empty.
func WithKeyPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithOwner sets the owner identity stored in the lock's hash. Default: a
// random UUID per [Lock]. The owner must be unique to one Lock: Redis tells
// owners apart by this value alone, so two live Locks with the same owner
// and name would both acquire, and the first to release would free the lock
// under the other.
func WithOwner(owner string) Option { return func(o *options) { o.owner, o.ownerSet = owner, true } }

// WithClockDrift sets how much faster than the holder's clock the server's
// may run, as a fraction: the holder considers every lease gone that
// fraction of the TTL (plus 2 ms) before the server expires it, so that it
// is told of a loss before anyone else can get in. Redis expires keys by its
// own clock; a server whose clock runs 1.05 times as fast as the holder's
// needs at least 0.05. Default: [DefaultClockDrift]. It must be at least 0
// and below 0.5.
func WithClockDrift(fraction float64) Option { return func(o *options) { o.drift = fraction } }

// WithMinReplicas makes every acquire, renewal and [Lock.Extend] wait, with
// WAIT, until n replicas acknowledged it or timeout passed. An acquire that
// too few replicas acknowledged is undone and fails with ErrNotReplicated; a
// renewal that too few acknowledged counts as failed, so the hold is lost if
// none succeeds before its validity deadline. Default: no waiting. n must be
// at least 1 and timeout at least 1 ms, and below the client's read timeout.
// The client must be a *redis.Client (including a Sentinel failover client)
// or a *redis.ClusterClient. These renewals are sent apart from other
// locks' renewals, so a slow acknowledgement delays only the locks that ask
// for it.
//
// WAIT is best effort, as Redis documents: acknowledged writes can still be
// lost in a failover that promotes a replica other than the ones that
// acknowledged, so this narrows, and does not close, the window in which a
// failover hands the lock to a second owner.
func WithMinReplicas(n int, timeout time.Duration) Option {
	return func(o *options) { o.minReplicas, o.replicaTimeout, o.replicasSet = n, timeout, true }
}

// defaultOptions are the options of a Lock made without any.
var defaultOptions = func() *options {
	o := new(options)
	if err := o.init(nil); err != nil {
		panic(err)
	}
	return o
}()

// lastOptions are the options of the Lock last made with some, for the
// next one to share when its options are equal: code that makes a Lock per
// entity usually passes the same ones.
var lastOptions atomic.Pointer[options]

// newOptions returns the defaults with opts applied, validated, and the
// owner they set ("" for none). The options it returns are shared and must
// not change; their owner is "" (only ownerSet tells of one), so that
// Locks that differ in their owner alone share them too.
func newOptions(opts []Option) (*options, string, error) {
	if len(opts) == 0 {
		return defaultOptions, "", nil
	}
	o := new(options)
	if err := o.init(opts); err != nil {
		return nil, "", err
	}
	owner := o.owner
	o.owner = ""
	if last := lastOptions.Load(); last != nil && *last == *o {
		return last, owner, nil
	}
	lastOptions.Store(o)
	return o, owner, nil
}

// init sets o to the defaults with opts applied, and validates it.
func (o *options) init(opts []Option) error {
	*o = options{
		ttl:      DefaultTTL,
		retryMin: DefaultRetryMin,
		retryMax: DefaultRetryMax,
		prefix:   DefaultKeyPrefix,
		drift:    DefaultClockDrift,
	}
	for _, opt := range opts {
		if opt == nil {
			return fmt.Errorf("%w: nil Option", ErrInvalidArgument)
		}
		opt(o)
	}
	if err := o.validate(); err != nil {
		return err
	}
	if !o.heartbeatSet {
		o.heartbeat = min(o.ttl/3, o.maxHeartbeat(o.ttl))
	}
	if !o.ownerSet {
		o.ownerUnique = true // each Lock generates its own
	}
	o.ttlMs = o.ttl.Milliseconds()
	return nil
}

func (o *options) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
	}
	if !(o.drift >= 0 && o.drift < 0.5) { // also NaN
		return bad("clock drift %v is not in [0, 0.5)", o.drift)
	}
	if err := o.checkTTL(o.ttl); err != nil {
		return err
	}
	switch {
	case o.noHeartbeat && o.heartbeatSet:
		return bad("WithHeartbeat(%v) and WithoutHeartbeat both given", o.heartbeat)
	case o.heartbeatSet && o.heartbeat <= 0:
		return bad("heartbeat interval %v is not positive", o.heartbeat)
	case o.heartbeatSet && o.heartbeat > o.maxHeartbeat(o.ttl):
		return bad("heartbeat interval %v leaves no time to renew a %v TTL and retry a failed renewal (must be at most %v, half the TTL less its safety margin)",
			o.heartbeat, o.ttl, o.maxHeartbeat(o.ttl))
	case o.waitTimeout < 0:
		return bad("wait timeout %v is negative", o.waitTimeout)
	case o.retryMin <= 0 || o.retryMax <= 0:
		return bad("retry backoff %v..%v is not positive", o.retryMin, o.retryMax)
	case o.retryMin > o.retryMax:
		return bad("retry backoff min %v is above max %v", o.retryMin, o.retryMax)
	case o.prefix == "":
		return bad("empty key prefix")
	case o.ownerSet && o.owner == "":
		return bad("empty owner")
	case o.replicasSet && o.minReplicas < 1:
		return bad("min replicas %d is below 1", o.minReplicas)
	case o.replicasSet && o.replicaTimeout < time.Millisecond:
		return bad("replica timeout %v is below 1ms", o.replicaTimeout)
	}
	return nil
}

// checkTTL rejects a TTL that leaves no validity: the lease is sent in whole
// milliseconds, and the holder relies on it for that, less the margin.
func (o *options) checkTTL(ttl time.Duration) error {
	if ms := ttl.Truncate(time.Millisecond); ms <= o.margin(ms) {
		return fmt.Errorf("%w: TTL %v is not above its safety margin %v (%v of it for clock drift + 2ms, in whole milliseconds)",
			ErrInvalidArgument, ttl, o.margin(ms), o.drift)
	}
	return nil
}

// maxHeartbeat is the longest heartbeat interval for ttl: half its validity.
func (o *options) maxHeartbeat(ttl time.Duration) time.Duration {
	ms := ttl.Truncate(time.Millisecond)
	return (ms - o.margin(ms)) / 2
}

// margin is how much earlier than the server-side expiry a holder considers
// its lease gone: the drift's share of the TTL, for a server clock that runs
// fast, plus 2 ms for timer and expiry resolution.
func (o *options) margin(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*o.drift) + 2*time.Millisecond
}
