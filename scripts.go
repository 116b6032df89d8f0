package redislock

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// newScript is redis.NewScript with the fence's TTL written into the source
// (FENCE_TTL_MS), which saves an argument on every call.
func newScript(src string) *redis.Script {
	return redis.NewScript(strings.ReplaceAll(src, "FENCE_TTL_MS", strconv.FormatInt(TokenCounterTTL.Milliseconds(), 10)))
}

// The lock is a Redis hash at KEYS[1] with fields "owner" (the holder's
// identity) and "count" (its reentrant depth), expiring by PEXPIRE. This is
// the Python original's format, so both can share locks; the extra field
// "token" (the hold's fencing token) is ignored by the original. A second
// hash per lock name, the fence at KEYS[2] (see fenceKeyFor), keeps the
// last fencing token issued ("last") and the token of the last hold
// released ("released"). Every script that changes the lock first checks
// that ARGV carries its owner, and a lease is only ever lengthened: any
// request that set an expiry leaves the key at least that long, so a holder
// may keep the latest validity deadline it computed. Key names come only
// through KEYS, so the scripts are safe on Redis Cluster.
//
// Redis counts every command a script runs, and each costs the server time
// on every acquisition: the common paths (a free lock taken, a held one
// refused, a last release) run as few as they can.

// acquireScript takes or re-enters the lock, and issues fencing tokens.
//
//	KEYS[1] lock key, KEYS[2] fence
//	ARGV[1] owner, ARGV[2] TTL in ms,
//	ARGV[3] "1" if the caller already holds the lock (re-entry must not create the key)
//
// When the owner holds the lock after the call it returns the hold's
// fencing token (> 0). A fresh hold takes the next token; a fence that had
// expired or never existed restarts from the server's clock in
// microseconds, above any token issued before, and expires TokenCounterTTL
// later. Otherwise it returns the other holder's remaining PTTL negated
// (< 0), or 0 when that is unknown (no expiry) or a re-entry found the key
// gone. A stored count that is not a positive integer fails a re-entry with
// an error starting "WRONGTYPE".
var acquireScript = newScript(`
local owner = redis.call('hget', KEYS[1], 'owner')
if owner == ARGV[1] then
  local v = redis.call('hmget', KEYS[1], 'count', 'token')
  local n = tonumber(v[1])
  if n == nil or n ~= n or n < 1 or n >= 2^53 or n ~= math.floor(n) then
    return redis.error_reply('WRONGTYPE lock count is not a positive integer')
  end
  redis.call('hset', KEYS[1], 'count', n + 1)
  if redis.call('pttl', KEYS[1]) < tonumber(ARGV[2]) then
    redis.call('pexpire', KEYS[1], ARGV[2])
  end
  return math.max(tonumber(v[2]) or 1, 1)
end
if owner == false and ARGV[3] ~= '1' and redis.call('exists', KEYS[1]) == 0 then
  local token = redis.call('hincrby', KEYS[2], 'last', 1)
  if token == 1 then
    local now = redis.call('time')
    token = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('hset', KEYS[2], 'last', token)
    redis.call('pexpire', KEYS[2], FENCE_TTL_MS)
  end
  redis.call('hset', KEYS[1], 'owner', ARGV[1], 'count', 1, 'token', token)
  redis.call('pexpire', KEYS[1], ARGV[2])
  return token
end
local ttl = redis.call('pttl', KEYS[1])
if ttl >= 0 then
  return -math.max(ttl, 1)
end
return 0
`)

// releaseScript gives up one reentrant level.
//
//	KEYS[1] lock key, KEYS[2] fence
//	ARGV[1] owner, ARGV[2] "1" if this is the caller's last level,
//	ARGV[3] the channel that announces the release to waiters,
//	ARGV[4] "publish", or "spublish" on a cluster (sharded pub/sub),
//	ARGV[5] the hold's fencing token
//
// Returns -1 when the owner does not hold the key; 0 when the key was
// deleted (last level) and the release announced; otherwise the count left.
// The caller's own count is authoritative: the last level deletes the key
// whatever the stored count says, and an earlier level never lets the stored
// count drop below 1, so a request retried by the client cannot release too
// much or too little; a stored count that is not a positive integer is
// reset to 1. A last release records the hold's token in the fence, so
// that the client retrying it after a lost reply gets 0, not -1 — unless
// another hold of the name was released in between (the record keeps one
// token), which makes the retry report a loss that did not happen. The
// releases that give back an unwanted grant ignore the reply, so the token
// they pass (the previous hold's) does not matter.
var releaseScript = newScript(`
local owner = redis.pcall('hget', KEYS[1], 'owner')
if owner ~= ARGV[1] then
  if ARGV[2] == '1' and redis.call('hget', KEYS[2], 'released') == ARGV[5] then
    return 0
  end
  return -1
end
if ARGV[2] == '1' then
  redis.call('del', KEYS[1])
  if redis.call('hset', KEYS[2], 'released', ARGV[5]) == 1 and redis.call('pttl', KEYS[2]) < 0 then
    redis.call('pexpire', KEYS[2], FENCE_TTL_MS)
  end
  redis.call(ARGV[4], ARGV[3], '')
  return 0
end
local n = tonumber(redis.call('hget', KEYS[1], 'count'))
if n == nil or n ~= n or n < 2 or n >= 2^53 or n ~= math.floor(n) then
  n = 2
end
redis.call('hset', KEYS[1], 'count', n - 1)
return n - 1
`)

// extendScript renews the leases of one or more holds in one call.
//
//	KEYS[i]     lock key of hold i
//	ARGV[2i-1]  owner of hold i, ARGV[2i] its TTL in ms
//
// Returns an array with, for each key, 1 if the owner holds it (its lease
// now lasts at least the TTL) and 0 if not. A key of another type counts as
// not held.
var extendScript = redis.NewScript(`
local res = {}
for i, key in ipairs(KEYS) do
  if redis.pcall('hget', key, 'owner') == ARGV[2*i-1] then
    if redis.call('pttl', key) < tonumber(ARGV[2*i]) then
      redis.call('pexpire', key, ARGV[2*i])
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
//	ARGV[1] owner
//
// Returns the PTTL in ms when the owner holds the key (-1: no expiry), or
// -2 when it does not.
var pttlScript = redis.NewScript(`
if redis.pcall('hget', KEYS[1], 'owner') ~= ARGV[1] then
  return -2
end
return redis.call('pttl', KEYS[1])
`)
