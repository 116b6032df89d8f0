package redislock

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// mutex is the primitive of [New]: one owner at a time.
var mutex = func() *primitive {
	p := newPrimitive("mutex", false, acquireScript, releaseScript, extendScript, pttlScript)
	p.handoff, p.handoffSHA = handoffScript, handoffScript.Hash()
	p.waitArg = true
	return p
}()

// The lock is a Redis hash at the lock key with fields "owner" (the
// holder's identity) and "count" (its reentrant depth), expiring by
// PEXPIRE. This is the Python original's format, so both can share locks;
// the extra field "token" (the hold's fencing token) is ignored by the
// original. Two more keys live in the lock key's cluster slot (see
// names.go): the slot's fencing counter, one integer shared by every lock
// name of the slot, which never expires; and, for ReleaseLatchTTL after a
// last release, the release latch, which holds the released hold's token so
// that a client retrying that release learns it succeeded.
//
// Every script that changes a hold first checks that ARGV carries its owner
// and token, and reads the lock key with pcall before it writes anything, so
// that a key of the wrong type fails the call with an error starting
// "WRONGTYPE" and leaves every key as it was (also on miniredis, which
// reports a failed redis.call as a compile error). A lease is only ever
// lengthened: any request that set an expiry leaves the key at least that
// long, so a holder may keep the latest validity deadline it computed. Key
// names come only through KEYS, so the scripts are safe on Redis Cluster.
//
// Redis counts every command a script runs, and each costs the server time
// on every acquisition: the common paths (a free lock taken, a held one
// refused, a last release) run as few as they can.

// acquireScript takes or re-enters the lock, and issues fencing tokens.
//
//	KEYS[1] lock key, KEYS[2] its fencing counter
//	ARGV[1] owner,
//	ARGV[2] "0" for a fresh hold, or the token of the hold to re-enter,
//	ARGV[3] TTL in ms, ARGV[4] the caller's process group when it will
//	wait in its process's queue, else "0" (see handoffScript)
//
// When the owner holds the lock after the call it returns the hold's
// fencing token (> 0). A fresh hold takes the counter's next value; a
// counter that never existed or was lost restarts from the server's clock
// in microseconds, above any token issued before. A fresh acquire that finds
// a key of its own owner (a hold its Lock has already ended as lost) makes a
// new hold of it, with a new token and count 1. Otherwise it returns the
// other holder's remaining PTTL negated (< 0), or 0 when that is unknown (no
// expiry) or a re-entry found its hold gone. A lock key of the wrong type, a
// counter that is not an integer, or a stored count that is not a positive
// integer fails the call with an error starting "WRONGTYPE" naming the key.
// Errors other than a wrong type (READONLY on a replica, OOM) are returned
// as they are. A hash without an owner field is someone else's.
var acquireScript = newScript(acquirePrelude + mutexReentrySource + `
if redis.call('exists', KEYS[1]) == 1 then
  local owner = redis.pcall('hget', KEYS[1], 'owner')
  if type(owner) == 'table' then
    return failed(owner, 'lock key ' .. KEYS[1] .. ' is not a lock hash')
  end
  if owner ~= ARGV[1] then
    if owner then
      -- Record who was kept waiting, for the hand-off (handoffScript); a
      -- server that refuses the write (out of memory) records nothing.
      local w = redis.call('hget', KEYS[1], 'waits')
      if w ~= ARGV[4] and w ~= '*' then
        redis.pcall('hset', KEYS[1], 'waits', (w and w ~= '') and '*' or ARGV[4])
      end
    end
    local ttl = redis.call('pttl', KEYS[1])
    if ttl >= 0 then
      return -math.max(ttl, 1)
    end
    return 0
  end
end
local token, err = nexttoken()
if err then
  return err
end
redis.call('hset', KEYS[1], 'owner', ARGV[1], 'count', 1, 'token', token)
redis.call('pexpire', KEYS[1], ARGV[3])
return token
`)

// releaseScript gives up one reentrant level of a hold.
//
//	KEYS[1] lock key, KEYS[2] its release latch
//	ARGV[1] owner, ARGV[2] the hold's token, or "0" to give back whatever
//	hold of this owner the key has (only for a Lock that has none),
//	ARGV[3] "1" if this is the caller's last level,
//	ARGV[4] the channel that announces the release to waiters,
//	ARGV[5] "publish", or "spublish" on a cluster (sharded pub/sub)
//
// Returns -1 when the hold is not on the key; 0 when the key was deleted
// (last level) and the release announced; otherwise the count left.
// The caller's own count is authoritative: the last level deletes the key
// whatever the stored count says, and an earlier level never lets the stored
// count drop below 1, so a request retried by the client cannot release too
// much or too little; a stored count that is not a positive integer is
// reset to 1. A last release leaves the hold's token in the latch for
// ReleaseLatchTTL, so that the client retrying it after a lost reply gets 0, not
// -1.
var releaseScript = newScript(mutexReleaseSource("''"))

// mutexReleaseSource is the release script of a mutex whose last release
// announces the Lua expression next: the owner a fair lock's waiter queue
// names, or ” for whoever waits.
func mutexReleaseSource(next string) string {
	return `
local v = redis.pcall('hmget', KEYS[1], 'owner', 'token')
if v.err or v[1] ~= ARGV[1] or (ARGV[2] ~= '0' and tonumber(v[2]) ~= tonumber(ARGV[2])) then
  if ARGV[3] == '1' and ARGV[2] ~= '0' and redis.pcall('get', KEYS[2]) == ARGV[2] then
    return 0
  end
  return -1
end
if ARGV[3] == '1' then
  redis.call('del', KEYS[1])
  redis.call('set', KEYS[2], ARGV[2], 'px', LATCH_TTL_MS)
  redis.call(ARGV[5], ARGV[4], ` + next + `)
  return 0
end
local n = tonumber(redis.call('hget', KEYS[1], 'count'))
if n == nil or n ~= n or n < 2 or n >= 2^53 or n ~= math.floor(n) then
  n = 2
end
redis.call('hset', KEYS[1], 'count', n - 1)
return n - 1
`
}

// extendScript renews the leases of one or more holds in one call.
//
//	KEYS[i]       lock key of hold i
//	ARGV[3i-2]    owner of hold i, ARGV[3i-1] its token, ARGV[3i] its TTL in ms
//
// Returns an array with, for each key, 1 if the hold is on it (its lease
// now lasts at least the TTL) and 0 if not. A key of another type counts as
// not held.
var extendScript = redis.NewScript(`
local res = {}
for i, key in ipairs(KEYS) do
  local v = redis.pcall('hmget', key, 'owner', 'token')
  if not v.err and v[1] == ARGV[3*i-2] and tonumber(v[2]) == tonumber(ARGV[3*i-1]) then
    if redis.call('pttl', key) < tonumber(ARGV[3*i]) then
      redis.call('pexpire', key, ARGV[3*i])
    end
    res[i] = 1
  else
    res[i] = 0
  end
end
return res
`)

// pttlScript reads the remaining lease of a hold.
//
//	KEYS[1] lock key
//	ARGV[1] owner, ARGV[2] the hold's token
//
// Returns the PTTL in ms when the hold is on the key (-1: no expiry), or
// -2 when it is not.
var pttlScript = redis.NewScript(`
local v = redis.pcall('hmget', KEYS[1], 'owner', 'token')
if v.err or v[1] ~= ARGV[1] or tonumber(v[2]) ~= tonumber(ARGV[2]) then
  return -2
end
return redis.call('pttl', KEYS[1])
`)

// processGroup names this process in the waits record (see handoffScript):
// random, so that no two processes share it.
var processGroup = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails, as documented
	return hex.EncodeToString(b[:])
}()

// mutexExtra is the mutex's own acquire argument: the process's group, for
// a caller that waits in this process's queue; noWait takes its place for
// one that will not wait.
var mutexExtra = []any{processGroup}

// maxHandoffs is how many holds in a row a lock may be handed from one
// waiter of a process to the next before a release frees it for all: a
// bound for waiters that do not record themselves (the Python original)
// and for those of the same process on another client.
const maxHandoffs = 16

// handoffScript gives up the last level of a hold and hands the lock to a
// waiter of the releasing process (the heir) in the same call, unless
// someone else was kept waiting (see below): then it releases the lock as
// releaseScript does.
//
//	KEYS[1] lock key, KEYS[2] the releasing hold's release latch,
//	KEYS[3] the fencing counter
//	ARGV[1] owner, ARGV[2] the hold's token, ARGV[3] the channel,
//	ARGV[4] "publish" or "spublish", ARGV[5] the heir's owner,
//	ARGV[6] the heir's TTL in ms, ARGV[7] the process group of both,
//	ARGV[8] "1" to release whoever waits, as for others kept waiting
//
// Returns -1 when the hold is not on the key, 0 when it released the lock
// (announced, the token left in the latch), -2 when it did so because
// someone outside the releasing process was kept waiting, or the fencing
// token (> 0) of the heir's new hold: count 1, the heir's TTL, the next
// token of the counter. The hash records, besides the Python original's
// fields and the token, the releasing hold's token ("from"), so that a
// retry of this call after its reply was lost returns the same token, and
// how many hand-offs came in a row ("chain"). A counter it cannot use (of
// another type, or a server out of memory) makes it release instead.
//
// Every acquire refused while the lock is held records, in the hash's
// field "waits", who was refused: the process group of a caller that waits
// in its process's queue, where a hand-off can reach it, "0" for one that
// does not wait (a TryAcquire), "*" once two different ones were refused.
// The lock is handed over only while that names nobody but the releasing
// process, and at most maxHandoffs times in a row. A release that lets
// others in makes its process hand the lock over no more for a while (see
// handoff.go), so that those who were refused, whom a release wakes or who
// try again by themselves (a TryAcquire that polls), find the lock free as
// often as without hand-offs. Waiters of the same process on other clients
// are looked for by the releaser itself.
var handoffScript = newScript(acquirePrelude + handoffPrelude + `
local others = ARGV[8] == '1' or (v[5] and v[5] ~= '' and v[5] ~= ARGV[7])
local chain = tonumber(v[4]) or 0
local token
if not others and chain < ` + strconv.Itoa(maxHandoffs) + ` then
  token = nexttoken(KEYS[3])
end
if not token then
  release('')
  if others then
    return -2
  end
  return 0
end
return grant(token, 'waits', '', 'chain', chain + 1)
`)

// handoffPrelude is the part the hand-off scripts of the mutex and the fair
// mutex share. It reads the lock hash into v (owner, token, from, chain,
// waits) and returns for a hold that is not on the key: the token "from"
// names when a retry of a hand-off that was made comes after its reply was
// lost, 0 for a retried release, -1 otherwise. release(next) releases the
// lock as the mutex's release does, announcing next; grant(token, ...)
// makes the heir's hold, with the fields given after the token, and
// returns the token.
const handoffPrelude = `
local v = redis.pcall('hmget', KEYS[1], 'owner', 'token', 'from', 'chain', 'waits')
if v.err or v[1] ~= ARGV[1] or tonumber(v[2]) ~= tonumber(ARGV[2]) then
  if not v.err and v[1] == ARGV[5] and tonumber(v[3]) == tonumber(ARGV[2]) then
    return tonumber(v[2])
  end
  if redis.pcall('get', KEYS[2]) == ARGV[2] then
    return 0
  end
  return -1
end
local function release(next)
  redis.call('del', KEYS[1])
  redis.call('set', KEYS[2], ARGV[2], 'px', LATCH_TTL_MS)
  redis.call(ARGV[4], ARGV[3], next)
end
local function grant(token, ...)
  redis.call('hset', KEYS[1], 'owner', ARGV[5], 'count', 1, 'token', token, 'from', ARGV[2], ...)
  redis.call('pexpire', KEYS[1], ARGV[6])
  return token
end
`
