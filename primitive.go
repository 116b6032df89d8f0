package redislock

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A primitive is what a lock type adds to the lease engine: four scripts
// and whether several owners may hold it at once. The engine — holds,
// validity deadlines, the heartbeat, the notifier and waiting — runs them
// by the conventions below and knows nothing else of them.
//
// acquire takes a fresh hold or re-enters one:
//
//	KEYS[1] the lock key, KEYS[2] the fencing counter of its slot
//	ARGV[1] owner, ARGV[2] "0" for a fresh hold or the token of the hold to
//	re-enter, ARGV[3] TTL in ms, ARGV[4:] the primitive's own arguments
//
// and returns the hold's fencing token (> 0) when the owner holds it after
// the call; otherwise the milliseconds until it may free, negated (< 0), or
// 0 when that is unknown or a re-entry found its hold gone. A wrong type is
// an error starting "WRONGTYPE" that names the key.
//
// release gives up one level:
//
//	KEYS[1] the lock key, KEYS[2] the hold's release latch
//	ARGV[1] owner, ARGV[2] the hold's token, or "0" for whatever hold of
//	this owner the key has, ARGV[3] "1" for the last level,
//	ARGV[4] the channel to announce the release on, ARGV[5] "publish" or
//	"spublish"
//
// and returns -1 when the hold is not on the key, 0 when the last level
// was released (announced, and the token left in the latch for
// ReleaseLatchTTL, so that a retried release returns 0), else the levels
// left on the server.
//
// renew renews a batch of holds (see hold.renewScript), and pttl reads one
// hold's remaining lease:
//
//	KEYS[1] the lock key; ARGV[1] owner, ARGV[2] token
//
// returning the milliseconds left, -1 for no expiry, -2 when not held.
type primitive struct {
	name                   string
	shared                 bool // a waiter that acquires lets the next one try
	acquire, release       *redis.Script
	renew, pttl            *redis.Script
	acquireSHA, releaseSHA any // boxed once for the prebuilt commands

	// fair: waiters queue in Redis; each tries when the release names it
	// or its waiter lease is due for renewal, not only the local head.
	fair bool
	// extraKeys returns the keys acquire and release take after their
	// first two (KEYS[3], ...); nil for none.
	extraKeys func(key string) []string
	// waitArg: the last of the primitive's own acquire arguments says the
	// caller will wait, and is sent as 0 by one that will not (TryAcquire,
	// a zero wait timeout), so that it leaves no trace of waiting.
	waitArg bool
	// leave, when set, runs when a wait ends without the lock, to take back
	// what the waiter's attempts left (a place in a queue, a writer's
	// mark): KEYS as acquire's; ARGV[1] owner, ARGV[2] channel, ARGV[3]
	// "publish" or "spublish".
	leave *redis.Script
	// yield: an attempt kept out by another waiter's claim alone (0: a
	// writer's mark) moves its waiter behind the others of its process, so
	// that the one it waits for gets to try.
	yield bool
}

func newPrimitive(name string, shared bool, acquire, release, renew, pttl *redis.Script) *primitive {
	return &primitive{
		name: name, shared: shared,
		acquire: acquire, release: release, renew: renew, pttl: pttl,
		acquireSHA: acquire.Hash(), releaseSHA: release.Hash(),
	}
}

// newScript is redis.NewScript with the release latch's lifetime written
// into the source (LATCH_TTL_MS), which saves an argument on every call.
func newScript(src string) *redis.Script {
	return redis.NewScript(strings.ReplaceAll(src, "LATCH_TTL_MS", strconv.FormatInt(ReleaseLatchTTL.Milliseconds(), 10)))
}
