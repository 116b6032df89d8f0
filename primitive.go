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
// handoff, when the primitive has one, is release for a last level with a
// waiter of the same process to hand the lock to (the heir):
//
//	KEYS as release's, then the fencing counter of the lock key's slot
//	ARGV[1:4] as release's ARGV[1], ARGV[2], ARGV[4], ARGV[5],
//	ARGV[5] the heir's owner, ARGV[6] the heir's TTL in ms, ARGV[7] the
//	process's group (see mutex.go)
//
// and returns as release does, or the fencing token (> 0) of the hold the
// heir now has (count 1, its TTL); a retry after a lost reply returns the
// same. It may release instead of handing over, to let others in, and
// then returns -2 if others than the heir wait, so that the heir lets them
// try first.
//
// renew renews a batch of holds (see hold.renewScript), and pttl reads one
// hold's remaining lease:
//
//	KEYS[1] the lock key; ARGV[1] owner, ARGV[2] token
//
// returning the milliseconds left, -1 for no expiry, -2 when not held.
type primitive struct {
	name                   string
	family                 *primitive // primitives whose Locks lend each other holds; nil: itself
	shared                 bool       // a waiter that acquires lets the next one try
	acquire, release       *redis.Script
	renew, pttl            *redis.Script
	acquireSHA, releaseSHA any // boxed once for the prebuilt commands
	handoff                *redis.Script
	handoffSHA             any

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

// kin returns the primitive whose Locks lend each other holds through a
// context as p's do: a mutex's hold is a mutex's, fair or not.
func (p *primitive) kin() *primitive {
	if p.family != nil {
		return p.family
	}
	return p
}

// newScript is redis.NewScript with the release latch's lifetime written
// into the source (LATCH_TTL_MS), which saves an argument on every call.
func newScript(src string) *redis.Script {
	return redis.NewScript(strings.ReplaceAll(src, "LATCH_TTL_MS", strconv.FormatInt(ReleaseLatchTTL.Milliseconds(), 10)))
}

// Lua every acquire script starts with, for the conventions above:
//
//	failed(reply, what): a pcall's error reply, or "WRONGTYPE <what>" for
//	one that says the key has the wrong type or is not an integer.
//	nexttoken([counter]): the next fencing token from the counter at
//	KEYS[2], or at counter when given — one that never existed or was lost
//	restarts from the
//	server's clock in microseconds, above any token issued before — or
//	nil and the error reply to return.
const acquirePrelude = `
local function failed(reply, what)
  if string.sub(reply.err, 1, 9) == 'WRONGTYPE' or string.find(reply.err, 'not an integer', 1, true) then
    return redis.error_reply('WRONGTYPE ' .. what)
  end
  return reply
end
local function nexttoken(counter)
  counter = counter or KEYS[2]
  local token = redis.pcall('incr', counter)
  if type(token) == 'table' then
    return nil, failed(token, 'fencing counter ' .. counter .. ' is not an integer')
  end
  if token == 1 then
    local now = redis.call('time')
    token = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('set', counter, token)
  end
  return token
end
`

// mutexReentrySource re-enters a mutex hold (ARGV[2] its token), for the
// acquire scripts of the mutex and the fair mutex; see mutex.go.
const mutexReentrySource = `
if ARGV[2] ~= '0' then
  local v = redis.pcall('hmget', KEYS[1], 'owner', 'count', 'token')
  if v.err then
    return failed(v, 'lock key ' .. KEYS[1] .. ' is not a lock hash')
  end
  if v[1] ~= ARGV[1] or tonumber(v[3]) ~= tonumber(ARGV[2]) then
    return 0
  end
  local n = tonumber(v[2])
  if n == nil or n ~= n or n < 1 or n >= 2^53 or n ~= math.floor(n) then
    return redis.error_reply('WRONGTYPE lock key ' .. KEYS[1] .. ' has a count that is not a positive integer')
  end
  redis.call('hset', KEYS[1], 'count', n + 1)
  if redis.call('pttl', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('pexpire', KEYS[1], ARGV[3])
  end
  return tonumber(ARGV[2])
end
`
