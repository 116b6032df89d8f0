package redislock

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// WithFair makes [New] return a fair lock: waiters from every process are
// served in the order they first asked, through a queue kept in Redis
// beside the lock, in its slot. Each queued waiter holds a waiter lease of
// [DefaultWaiterTTL], which its attempts renew while it waits (at least
// every third of it); a waiter whose process died is skipped once its lease
// ends on the server's clock. A release names the queue's head in its
// announcement, and only that waiter tries: there is no race of heads. A
// waiter that gives up leaves the queue at once.
//
// The lock key stays the Python-compatible hash, so every Lock of the name
// must use WithFair for the order to hold: a Lock without it, or the Python
// original, ignores the queue and may take the lock whenever it is free.
// Default: not fair.
func WithFair() Option { return func(o *options) { o.fair = true } }

// DefaultWaiterTTL is the waiter lease of a fair lock's queued waiter.
const DefaultWaiterTTL = 3 * time.Second

// fairMutex is the primitive of New with WithFair: a mutex whose acquire
// and release keep the queue. Its renewals are the mutex's.
var fairMutex = &primitive{
	name:    "fair mutex",
	acquire: fairAcquireScript, release: fairReleaseScript,
	renew: extendScript, pttl: pttlScript,
	acquireSHA: fairAcquireScript.Hash(), releaseSHA: fairReleaseScript.Hash(),
	handoff: fairHandoffScript, handoffSHA: fairHandoffScript.Hash(),
	family:  mutex,
	fair:    true,
	waitArg: true,
	leave:   fairLeaveScript,
	extraKeys: func(key string) []string {
		return []string{slotName(key, "queue:"+key), slotName(key, "waiters:"+key)}
	},
}

// fairScriptHead is the part of the fair scripts that drops the waiters
// whose lease has ended: from the order (KEYS[3], a sorted set of owners by
// arrival) and from the leases (KEYS[4], owners by lease expiry in ms of
// the server's clock).
const fairScriptHead = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('zrangebyscore', KEYS[4], 0, now, 'LIMIT', 0, 1000)
for i = 1, #dead, 100 do
  redis.call('zrem', KEYS[3], unpack(dead, i, math.min(i + 99, #dead)))
end
if #dead > 0 then
  redis.call('zremrangebyscore', KEYS[4], 0, now)
end
`

// fairAcquireScript is the mutex's acquire with a queue in front (see
// primitive and mutex.go for the conventions and the lock hash):
//
//	KEYS[3] the queue's order, KEYS[4] the waiters' leases
//	ARGV[4] the waiter lease in ms, or 0 for a caller that will not wait
//	(it is refused without being queued)
//
// A fresh acquire takes a free lock only when the queue is empty or the
// caller is at its head; otherwise it queues the caller (or renews its
// waiter lease) and returns, negated, how long to wait before trying again:
// the holder's remaining lease for the head, a third of the waiter lease
// for the others. A re-entry is the mutex's.
var fairAcquireScript = newScript(acquirePrelude + mutexReentrySource + fairScriptHead + `
local lease = tonumber(ARGV[4])
local third = math.max(math.floor(lease / 3), 1)
local function queue(wait)
  if lease == 0 then
    return -math.max(wait, 1)
  end
  redis.call('zadd', KEYS[3], 'NX', tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[1])
  redis.call('zadd', KEYS[4], now + lease, ARGV[1])
  redis.call('pexpire', KEYS[3], 2 * lease)
  redis.call('pexpire', KEYS[4], 2 * lease)
  return -math.max(wait, 1)
end
local head = redis.call('zrange', KEYS[3], 0, 0)[1]
local stale = false
if redis.call('exists', KEYS[1]) == 1 then
  local owner = redis.pcall('hget', KEYS[1], 'owner')
  if type(owner) == 'table' then
    return failed(owner, 'lock key ' .. KEYS[1] .. ' is not a lock hash')
  end
  if owner ~= ARGV[1] then
    local wait = third
    if head == nil or head == ARGV[1] then
      local ttl = redis.call('pttl', KEYS[1])
      if ttl >= 0 then
        wait = math.min(wait, ttl)
      end
    end
    return queue(wait)
  end
  -- A hold of this owner that its Lock has given up: with nobody queued
  -- before it, a new hold replaces it; otherwise it goes, and the caller
  -- waits its turn.
  stale = true
  if head ~= nil and head ~= ARGV[1] then
    redis.call('del', KEYS[1])
    return queue(third)
  end
end
if not stale and head ~= nil and head ~= ARGV[1] then
  return queue(third)
end
local token, err = nexttoken()
if err then
  return err
end
if head ~= nil then
  redis.call('zrem', KEYS[3], ARGV[1])
  redis.call('zrem', KEYS[4], ARGV[1])
end
redis.call('hset', KEYS[1], 'owner', ARGV[1], 'count', 1, 'token', token)
redis.call('pexpire', KEYS[1], ARGV[3])
return token
`)

// fairReleaseScript is the mutex's release; the announcement of a last
// release carries the owner at the queue's head, which alone is to try
// (KEYS[3] and KEYS[4] as for fairAcquireScript).
var fairReleaseScript = newScript(fairScriptHead + mutexReleaseSource("redis.call('zrange', KEYS[3], 0, 0)[1] or ''"))

// fairHandoffScript is the mutex's handoffScript for a fair lock (KEYS[3]
// and KEYS[4] as for fairAcquireScript, KEYS[5] the fencing counter): it
// hands the lock over when the heir is at the head of the queue, and takes
// it out of the queue; otherwise it releases as fairReleaseScript does,
// naming the head. The queue keeps the order, so nothing else is weighed.
var fairHandoffScript = newScript(acquirePrelude + fairScriptHead + handoffPrelude + `
local head = redis.call('zrange', KEYS[3], 0, 0)[1]
local token
if head == ARGV[5] then
  token = nexttoken(KEYS[5])
end
if not token then
  -- Someone else is first, or the counter cannot be used (of another
  -- type, or a server out of memory): release all the same.
  release(head or '')
  return 0
end
redis.call('zrem', KEYS[3], ARGV[5])
redis.call('zrem', KEYS[4], ARGV[5])
return grant(token)
`)

// fairLeaveScript takes a waiter that gives up out of the queue, and if it
// was the head of a free lock's queue, announces the next head (see
// primitive.leave; KEYS as for fairAcquireScript).
var fairLeaveScript = redis.NewScript(`
local head = redis.call('zrange', KEYS[3], 0, 0)[1]
redis.call('zrem', KEYS[3], ARGV[1])
redis.call('zrem', KEYS[4], ARGV[1])
if head == ARGV[1] and redis.call('exists', KEYS[1]) == 0 then
  local next = redis.call('zrange', KEYS[3], 0, 0)[1]
  if next then
    redis.call(ARGV[3], ARGV[2], next)
  end
end
return 0
`)
