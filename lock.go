package redislock

import (
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
	keys      []string // the lock key
	withFence []string // the lock key and its fence

	// Whole EVALSHA commands for the requests on the hot path; see evalsha.
	acquireFresh, acquireReentry []any
	release, releaseLast         []any

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
	l.withFence = []string{l.key, fenceKeyFor(l.key)}
	publish := "publish"
	if _, ok := client.(*redis.ClusterClient); ok {
		publish = "spublish" // heard on the channel's shard only
	}
	l.acquireFresh = evalshaCmd(acquireScript, l.withFence, l.owner, l.ttlMs, "0")
	l.acquireReentry = evalshaCmd(acquireScript, l.withFence, l.owner, l.ttlMs, "1")
	l.release = evalshaCmd(releaseScript, l.withFence, l.owner, "0")
	// The last element, the hold's token, is set by each fresh acquire.
	l.releaseLast = evalshaCmd(releaseScript, l.withFence, l.owner, "1", l.channel, publish, int64(0))
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
// received it, see [WithMinReplicas]) or if the counter was recreated (it
// expires [TokenCounterTTL] after it was created) while the server's clock
// was set back.
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
