package redislock

import "github.com/redis/go-redis/v9"

// Primitives that several owners hold at once (Semaphore, RWLock) keep
// their holds as members of a sorted set at the lock key: the member is
// "<owner>|<token>" and its score the hold's expiry in milliseconds of the
// server's clock (Redis TIME), plus a class offset that sorts members by
// kind — readers and permits below 2^50, a writer between 2^50 and 2^51, a
// waiting writer's mark above 2^51. Every script first drops the members
// whose expiry has passed, so a dead holder frees its share when its lease
// ends on the server's clock, whatever the clients' clocks say. The key
// itself expires no earlier than its last member, and goes with its last
// release. Scores stay exact: expiries are below 2^42 ms, offsets are powers
// of two, and doubles are exact up to 2^53.

// dropOwnSource defines dropown(key, owner), which removes every member of
// owner at key: a fresh acquire's leftovers of the same Lock (a request
// that took a share but whose reply was lost, then retried; a share given
// up locally). The owner is unique to its Lock, which holds nothing when it
// acquires afresh.
const dropOwnSource = `
local function dropown(key, owner)
  local pat = string.gsub(owner, '[%*%?%[%]\\]', '\\%0') .. '|*'
  local cursor = '0'
  repeat
    local r = redis.call('zscan', key, cursor, 'MATCH', pat, 'COUNT', 1000)
    cursor = r[1]
    for i = 1, #r[2], 2 do
      redis.call('zrem', key, r[2][i])
    end
  until cursor == '0'
end
`

// permitPrelude starts the acquire scripts of member holds: acquirePrelude
// and dropOwnSource, then now (the server's clock in ms) and the purge of
// the members whose lease has ended, which fails the call, naming the
// key as what, if the key is not a sorted set.
func permitPrelude(what string) string {
	return acquirePrelude + dropOwnSource + `
local key = KEYS[1]
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local purged = redis.pcall('zremrangebyscore', key, 0, now)
if type(purged) == 'table' then
  return failed(purged, '` + what + ` ' .. key .. ' is not a sorted set')
end
`
}

// permitRenewScript renews a batch of member holds (see hold.renewScript):
//
//	KEYS[i] lock key of hold i; ARGV[3i-2] owner, ARGV[3i-1] token,
//	ARGV[3i] TTL in ms
//
// A member whose expiry has passed counts as not held.
var permitRenewScript = redis.NewScript(`
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local res = {}
for i, key in ipairs(KEYS) do
  local member = ARGV[3*i-2] .. '|' .. ARGV[3*i-1]
  local ttl = tonumber(ARGV[3*i])
  local s = redis.pcall('zscore', key, member)
  res[i] = 0
  if type(s) == 'string' then
    s = tonumber(s)
    local off = 0
    if s > 2^50 then off = 2^50 end
    if s - off > now then
      if s - off < now + ttl then
        redis.call('zadd', key, off + now + ttl, member)
      end
      if redis.call('pttl', key) < ttl then
        redis.call('pexpire', key, ttl)
      end
      res[i] = 1
    end
  end
end
return res
`)

// permitPTTLScript reads one member hold's remaining lease:
//
//	KEYS[1] lock key; ARGV[1] owner, ARGV[2] token
//
// Returns the milliseconds left, or -2 when the hold is not on the key.
var permitPTTLScript = redis.NewScript(`
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.pcall('zscore', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
if type(s) ~= 'string' then
  return -2
end
s = tonumber(s)
if s > 2^50 then s = s - 2^50 end
if s <= now then
  return -2
end
return s - now
`)

// permitReleaseSource is the release script of member holds, with
// WAKE_CONDITION replaced by a Lua expression that says whether the release
// is to be announced (locals: key, left = live holders left).
//
//	KEYS[1] lock key, KEYS[2] the hold's release latch
//	ARGV as in every release script (see primitive)
//
// The server keeps no count of levels: every level but the last only checks
// that the hold is there (and returns 1); the last removes the member,
// deletes the key when no hold is left on it, and leaves the token in the
// latch.
const permitReleaseSource = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = KEYS[1]
local member
if ARGV[2] == '0' then
  local all = redis.pcall('zrange', key, 0, -1)
  if all.err then
    return -1
  end
  local prefix = ARGV[1] .. '|'
  for _, m in ipairs(all) do
    if string.sub(m, 1, #prefix) == prefix then
      member = m
    end
  end
  if member == nil then
    return -1
  end
else
  member = ARGV[1] .. '|' .. ARGV[2]
end
local s = redis.pcall('zscore', key, member)
if type(s) ~= 'string' then
  if ARGV[3] == '1' and ARGV[2] ~= '0' and redis.pcall('get', KEYS[2]) == ARGV[2] then
    return 0
  end
  return -1
end
if ARGV[3] ~= '1' then
  return 1
end
redis.call('zrem', key, member)
redis.call('zremrangebyscore', key, 0, now)
redis.call('zremrangebyscore', key, 2^50, 2^50 + now)
redis.call('zremrangebyscore', key, 2^51, 2^51 + now)
local left = redis.call('zcount', key, '(0', '(2251799813685248')
if left == 0 then
  local mark = redis.call('zrangebyscore', key, '(2251799813685248', '+inf', 'WITHSCORES')
  if #mark == 0 then
    redis.call('del', key)
  else
    -- Only a waiting writer's mark is left: the key lasts as long as it.
    redis.call('pexpire', key, math.max(tonumber(mark[#mark]) - 2251799813685248 - now, 1))
  end
end
redis.call('set', KEYS[2], ARGV[2], 'px', LATCH_TTL_MS)
if WAKE_CONDITION then
  redis.call(ARGV[5], ARGV[4], '')
end
return 0
`
