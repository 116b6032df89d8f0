package redislock

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A Lock is one owner's handle on a named lock in Redis. It is safe for
// concurrent use, but goroutines that share a Lock share its holds: for
// mutual exclusion between goroutines, give each its own Lock.
type Lock struct {
	client  redis.UniversalClient
	prim    *primitive
	key     string
	channel string // announces releases; see channelFor
	owner   string
	opts    *options // shared by Locks made with equal options; read only

	// Script keys, and the whole EVALSHA command of the release, built
	// once; see evalsha. The acquire's command is built for each request
	// (see runAcquire) from the same fields. Both commands' token argument
	// (index tokenArg, after "evalsha", the SHA, the key count, the keys and
	// the owner) and the release's last-level flag (after the token) are set
	// for each request while op is held. releaseKeys is nil when they are
	// the key and the latch: evalsha reads them from the command.
	acquireKeys, releaseKeys []string
	releaseCmd               []any
	extra                    []any     // the primitive's own acquire arguments
	latch                    string    // the release latch; see newNames
	keyBuf                   [2]string // the key and the fencing counter
	tokenArg                 int
	cmdBuf                   [releaseArgs]any

	// guard, when set, refuses a fresh acquire that could never succeed.
	guard func() error
	limit int // a semaphore's; 0 for the others
	// bypass, when set and true, lets an acquire try at once and out of
	// turn: a downgrade, which its own writer's hold lets through.
	bypass func() bool

	// op serialises this Lock's requests to Redis, so that the local count
	// and the stored one change in the same order. It is held across round
	// trips (mu is not), and waiting for it respects the caller's context.
	op chan struct{}

	mu         sync.Mutex
	hold       *hold           // the own hold, nil when none
	borrows    []*hold         // levels of other Locks' holds taken through a context, oldest first
	stale      *hold           // the last hold lost while its key may still be on the server
	unreported *hold           // the last hold lost, until reportLosses tells of it
	lost       <-chan struct{} // what Lost returns when there is no hold
	lostCause  error           // why the last own hold was lost, until the next acquire
}

// New returns a mutex: a Lock on the key prefix+name that one owner holds
// at a time. It makes no Redis call. It fails with ErrInvalidArgument when
// client is nil, name is empty, or an option is out of range.
func New(client redis.UniversalClient, name string, opts ...Option) (*Lock, error) {
	return newLock(client, name, mutex, opts, mutexExtra)
}

// fairExtra is the fair mutex's own acquire argument: the waiter lease;
// noWait takes the place of a primitive's waitArg for a caller that will
// not wait.
var (
	fairExtra     = []any{DefaultWaiterTTL.Milliseconds()}
	noWait    any = int64(0)
)

// newLock returns a Lock of primitive p. extra are p's own acquire
// arguments (at most maxExtra).
func newLock(client redis.UniversalClient, name string, p *primitive, opts []Option, extra []any) (*Lock, error) {
	if err := checkClient(client); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%w: empty lock name", ErrInvalidArgument)
	}
	o, owner, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	l := &Lock{client: client, prim: p, opts: o, lost: neverLost}
	if o.fair {
		if p != mutex {
			return nil, fmt.Errorf("%w: WithFair is an option of New only", ErrInvalidArgument)
		}
		p, extra = fairMutex, fairExtra
		l.prim = p
	}
	if o.minReplicas > 0 {
		if err := checkReplicaClient(client, o.replicaTimeout); err != nil {
			return nil, err
		}
	}
	// A latch per owner: a release retried after its reply was lost must
	// find its own token, not that of a holder who came and went meanwhile.
	ln := newNames(o.prefix, name, owner)
	l.key, l.channel, l.latch, l.owner, l.extra = ln.key, ln.channel, ln.latch, ln.owner, extra
	l.op = make(chan struct{}, 1)
	// The release command lives in the Lock and points to its fields, so
	// that it costs no allocation of its own: New is paid by every lock
	// name in the one-Lock-per-entity pattern. go-redis reads *string and
	// *int64 arguments as their values, for routing too.
	pub := publishVerb(client)
	l.keyBuf = [...]string{l.key, ln.fence}
	l.acquireKeys = l.keyBuf[:]
	release := append(l.cmdBuf[:0], "evalsha", p.releaseSHA, 2, &l.key, &l.latch)
	if p.extraKeys != nil {
		more := p.extraKeys(l.key)
		l.acquireKeys = append(l.keyBuf[:2:2], more...)
		l.releaseKeys = append([]string{l.key, l.latch}, more...)
		release = make([]any, 0, releaseArgs+len(more))
		release = append(release, "evalsha", p.releaseSHA, len(l.releaseKeys), &l.key, &l.latch)
		for i := range more {
			release = append(release, &l.releaseKeys[2+i])
		}
	}
	l.tokenArg = len(release) + 1
	l.releaseCmd = append(release, &l.owner, "0", "0", &l.channel, pub)
	return l, nil
}

// releaseArgs is the length of a release command with two keys.
const releaseArgs = 10

// maxExtra is how many acquire arguments of its own a primitive may have.
const maxExtra = 2

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
func (l *Lock) Name() string { return l.key[len(l.opts.prefix):] }

// Key returns the Redis key of the lock: the key prefix followed by the name.
func (l *Lock) Key() string { return l.key }

// Owner returns the owner identity this Lock stores in Redis.
func (l *Lock) Owner() string { return l.owner }

// Held reports whether this Lock holds the lock now, by its own account: it
// turns false at release, on loss, and when the local validity deadline has
// passed. A Lock holding a level borrowed through a context reports the
// lender's hold. It makes no Redis call.
func (l *Lock) Held() bool {
	h := l.current()
	return h != nil && h.live()
}

// Count returns how many reentrant levels this Lock holds: those of its own
// hold, or the borrowed levels of holds that have not ended. It is 0
// whenever Held is false.
func (l *Lock) Count() int {
	l.mu.Lock()
	if h := l.hold; h != nil {
		n := 0
		if time.Now().Before(h.deadline) {
			n = int(h.count)
		}
		l.mu.Unlock()
		return n
	}
	bs := slices.Clone(l.borrows)
	l.mu.Unlock()
	n := 0
	for _, h := range bs {
		if h.live() {
			n++
		}
	}
	return n
}

// Token returns the fencing token of the current hold, or 0 when not held.
// Every fresh acquisition of a lock name, by any Lock, gets a larger token
// than the ones before; re-entering keeps it. Tokens of different names
// may come from one sequence (one counter per Redis Cluster hash slot), so
// compare tokens of one name only. Pass it to the resource the lock
// protects and have that resource refuse a token lower than one it has
// seen: that, not the lease, makes a stalled former holder harmless. Tokens
// come with the acquire round trip. They can go backwards only if Redis
// loses the counter's last increment (a failover to a replica that had not
// received it, see [WithMinReplicas]), if the counter was lost and the
// server's clock, from which a new counter starts, was set back, or on a
// redis.Ring whose shards change: each shard counts for itself, so a name
// that moves to another shard may meet a lower count there.
func (l *Lock) Token() int64 {
	h := l.current()
	if h == nil {
		return 0
	}
	h.lock.mu.Lock()
	defer h.lock.mu.Unlock()
	if h.ended {
		return 0
	}
	return h.token
}

// Lost returns a channel that is closed when the current hold is lost:
// another owner took the key, the key vanished, or the lease ran out before
// a renewal succeeded. A release does not close it. Call Lost after the
// acquire it should watch; before the first acquire it returns a channel that
// is never closed. A Lock holding a level borrowed through a context returns
// the lender's hold's channel.
func (l *Lock) Lost() <-chan struct{} {
	if h := l.current(); h != nil {
		return h.lostChan()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// checkReplicaClient rejects clients that WithMinReplicas cannot use, and
// a replica timeout that the client's read timeout would cut short.
func checkReplicaClient(client redis.UniversalClient, timeout time.Duration) error {
	var read time.Duration
	switch c := client.(type) {
	case *redis.Client:
		read = c.Options().ReadTimeout
	case *redis.ClusterClient:
		read = c.Options().ReadTimeout
	default:
		return fmt.Errorf("%w: WithMinReplicas needs a *redis.Client or *redis.ClusterClient, not %T", ErrInvalidArgument, client)
	}
	if read > 0 && timeout >= read {
		return fmt.Errorf("%w: replica timeout %v is not below the client's read timeout %v: WAIT would be cut short",
			ErrInvalidArgument, timeout, read)
	}
	return nil
}
