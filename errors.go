package redislock

import "errors"

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
	// succeeded. The [context.Cause] of the context that WithLock passes to
	// its function wraps it when the hold is lost: match it with
	// errors.Is(context.Cause(ctx), ErrLockLost).
	ErrLockLost = errors.New("redislock: lock lost")

	// ErrInvalidArgument means an argument or option is out of range. The
	// error text names the bad value.
	ErrInvalidArgument = errors.New("redislock: invalid argument")

	// ErrWrongType means a key the lock uses holds a Redis value of the
	// wrong type: the lock key is not a lock hash (or its count is not a
	// positive integer), or the fencing counter of its slot is not an
	// integer. The error names the key; the lock cannot be used until that
	// key is removed. The call that reports it changed nothing.
	ErrWrongType = errors.New("redislock: a key of the lock holds a value of the wrong type")

	// ErrLimitMismatch means a semaphore acquire asked for another limit
	// than the one its current holders set (see [NewSemaphore]).
	ErrLimitMismatch = errors.New("redislock: semaphore limit differs from its holders'")

	// ErrWouldDeadlock means the acquire can never succeed for this owner:
	// an [RWLock]'s writer asked for the lock while its own reader holds it.
	ErrWouldDeadlock = errors.New("redislock: acquire would deadlock")

	// ErrNotReplicated means fewer replicas than [WithMinReplicas] asks for
	// acknowledged an acquire or extension in time. An acquire is undone and
	// fails with it joined with ErrNotAcquired; an extension leaves the hold
	// and its validity deadline as they were.
	ErrNotReplicated = errors.New("redislock: too few replicas acknowledged")
)
