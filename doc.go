// Package redislock provides distributed locks on Redis: a [Lock] names a
// key that at most one owner holds at a time, across goroutines, processes
// and machines that share a Redis server.
//
// A hold is a lease. Acquiring sets the key with a TTL, and while the lock is
// held a heartbeat renews it (one per Redis client, renewing every held lock
// of that client in batched round trips). The holder keeps a local validity
// deadline on its monotonic clock: the start of the last successful acquire
// or renewal request plus the TTL, minus a margin for clock-rate drift. If
// Redis refuses a renewal, or the deadline passes without one (Redis
// unreachable, paused or failing), the hold is lost: [Lock.Lost] closes,
// [Lock.Held] turns false, and the context that [Lock.WithLock] gave the
// critical section is cancelled with cause [ErrLockLost] — before the key can
// expire on the server, as long as the server's clock runs at the rate of
// the holder's.
//
// Locks are reentrant: the same Lock may acquire again and must release as
// often. A context from WithLock carries its hold, so nested code that locks
// the same key through the same client re-enters instead of deadlocking.
//
// # What a lease cannot promise
//
// A holder that stalls longer than the remaining lease (a long GC pause, a
// suspended VM) resumes believing it holds the lock while another owner may
// already hold it; no client-side check can close that window. Redis
// replication is asynchronous, so a failover can lose a freshly written
// lock, and a server restarted without persistence forgets every lock. Use
// these locks for efficiency (avoid doing work twice) as they are; for
// correctness, have the protected resource itself reject stale writers.
//
// # Wire format
//
// The key is the prefix (default "lock:") followed by the name. It holds a
// Redis hash with fields "owner" and "count" and expires by PEXPIRE, the
// format of the Python original this package is compatible with: both can
// share locks, each excluding the other.
package redislock
