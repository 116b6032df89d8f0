package redislock

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with [errors.Is]: the errors the package returns
// wrap or join these with the cause (a context error, a Redis error).
var (
	// ErrNotAcquired means the lock could not be acquired: TryAcquire found
	// it held by another owner, or Acquire stopped waiting because its ctx
	// was done or the wait timeout passed (then the error also matches the
	// context error).
	ErrNotAcquired = errors.New("redislock: not acquired")

	// ErrNotHeld means the call needs a hold this owner does not have: it
	// never acquired the lock, released it more often than it acquired it,
	// or lost it.
	ErrNotHeld = errors.New("redislock: not held")

	// ErrLockLost means a hold ended without being released: another owner
	// took the key, the key vanished, or the lease ran out before a renewal
	// succeeded. It is the [context.Cause] of the context that WithLock
	// passes to its function when the hold is lost.
	ErrLockLost = errors.New("redislock: lock lost")

	// ErrInvalidArgument means an argument or option is out of range. The
	// error text names the bad value.
	ErrInvalidArgument = errors.New("redislock: invalid argument")

	// ErrWrongType means the lock's key holds a Redis value that is not a
	// lock hash, so the lock cannot be used until that key is removed.
	ErrWrongType = errors.New("redislock: key holds a value that is not a lock")

	// ErrNotReplicated means fewer replicas than [WithMinReplicas] asks for
	// acknowledged an acquire or extension in time. An acquire is undone and
	// fails with it; it also matches ErrNotAcquired.
	ErrNotReplicated = fmt.Errorf("%w: too few replicas acknowledged it", ErrNotAcquired)
)
