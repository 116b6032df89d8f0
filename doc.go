// Package redislock provides distributed locks on Redis: a [Lock] names a
// key that at most one owner holds at a time, across goroutines, processes
// and machines that share a Redis server, Sentinel group or Cluster.
//
// A hold is a lease. Acquiring sets the key with a TTL, and while the lock is
// held a heartbeat renews it: one per Redis client, renewing every held lock
// of that client in batched round trips, without a goroutine between
// rounds. The holder keeps a local validity deadline on its monotonic clock:
// the start of the last successful acquire or renewal request plus the TTL,
// minus a margin for clock-rate drift. If Redis refuses a renewal, or the
// deadline passes without one (Redis unreachable, paused or failing), the
// hold is lost: [Lock.Lost] closes, [Lock.Held] turns false, and the context
// that [Lock.WithLock] gave the critical section is cancelled with cause
// [ErrLockLost] (match it with errors.Is; the cause says why) — before the
// key can expire on the server, as long as the server's clock runs at the
// rate of the holder's.
//
// Locks are reentrant: the same Lock may acquire again and must release as
// often. A context from WithLock carries its hold, so nested code that locks
// the same key through the same client re-enters instead of deadlocking.
//
// Waiters do not poll: a release is announced on a pub/sub channel of the
// lock (sharded pub/sub on a cluster), waiters of one process queue in FIFO
// order behind one shared subscription connection per client (per shard on
// a cluster or a Ring), and only the head of the
// queue tries. Sleeps stay capped by the holder's remaining lease and a
// backoff, so a release that announces nothing is still noticed. A last
// release that finds a waiter of its own process and client hands the lock
// to it in the same request, unless others were kept waiting meanwhile:
// the waiter's Acquire then returns without a request of its own.
//
// # What a lease cannot promise
//
// A holder that stalls longer than the remaining lease (a long GC pause, a
// suspended VM) resumes believing it holds the lock while another owner may
// already hold it; no client-side check can close that window. Redis
// replication is asynchronous, so a failover can lose a freshly written
// lock ([WithMinReplicas] narrows this), and a server restarted without
// persistence forgets every lock. Use these locks as they are for efficiency
// (avoid doing work twice); for correctness, have the protected resource
// check the fencing token of [Lock.Token] and refuse stale writers.
//
// # Wire format
//
// The key is the prefix (default "lock:") followed by the name. It holds a
// Redis hash with fields "owner" and "count" and expires by PEXPIRE, the
// format of the Python original this package is compatible with: both can
// share locks, each excluding the other. This package adds a "token" field,
// which the original ignores. Two more kinds of keys: a fencing-token
// counter that never expires, one per cluster slot, shared by the names of
// the slot and bounded by the number of slots (16,384), and, for
// [ReleaseLatchTTL] after
// a last release, a small release latch in the lock key's slot. Nothing of a
// lock name stays in Redis longer than that after its last release.
//
// A level borrowed through a WithLock context belongs to the hold it came
// from and ends with it; see [Lock.Acquire] and [Lock.Release].
package redislock
