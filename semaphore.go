package redislock

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewSemaphore returns a Lock on a counting semaphore: at most limit owners
// hold the name at once, each Lock at most one permit (acquiring again
// re-enters it, as with [New]). Each permit is a lease of its own, renewed
// by the heartbeat and reported lost as a mutex hold is; a holder that dies
// frees its permit when its lease ends on the server's clock. Every permit
// gets a fencing token, strictly increasing per name. A release wakes one
// waiter per permit it frees.
//
// All holders of a name must agree on limit: an acquire with another limit
// than the one the current holders set fails with ErrLimitMismatch. New
// returns ErrInvalidArgument for limit < 1 and for what [New] refuses. The
// key (prefix+name, as for New) holds a sorted set; a mutex of the same name
// and prefix would collide with it (ErrWrongType). NewSemaphore makes no
// Redis call.
func NewSemaphore(client redis.UniversalClient, name string, limit int, opts ...Option) (*Lock, error) {
	if limit < 1 {
		return nil, fmt.Errorf("%w: semaphore limit %d is below 1", ErrInvalidArgument, limit)
	}
	l, err := newLock(client, name, semaphore, opts, []any{int64(limit)})
	if err != nil {
		return nil, err
	}
	l.limit = limit // only Locks of one limit lend each other their permits
	return l, nil
}

// SemaphoreHolders reports how many permits of the semaphore name are held
// now, by the server's clock, without taking one. Of opts only
// [WithKeyPrefix] matters. It returns ErrWrongType when the key holds
// something else, or the Redis error.
func SemaphoreHolders(ctx context.Context, client redis.UniversalClient, name string, opts ...Option) (int, error) {
	if err := checkClient(client); err != nil {
		return 0, err
	}
	var o options
	if err := o.init(opts); err != nil {
		return 0, err
	}
	key := o.prefix + name
	n, err := semaphoreHoldersScript.Run(ctx, client, []string{key}).Int()
	if err != nil {
		if isWrongType(err.Error()) {
			return 0, fmt.Errorf("redislock: semaphore holders %q: %w: %w", key, ErrWrongType, err)
		}
		return 0, fmt.Errorf("redislock: semaphore holders %q: %w", key, err)
	}
	return n, nil
}

var semaphore = newPrimitive("semaphore", true, semaphoreAcquireScript,
	newScript(strings.ReplaceAll(permitReleaseSource, "WAKE_CONDITION", "true")),
	permitRenewScript, permitPTTLScript)

// semaphoreAcquireScript takes or re-enters a permit; see primitive for
// the conventions.
//
//	ARGV[4] the limit
//
// The limit is kept in the set as the member "\0limit" with the limit,
// negated, as its score, while any permit is live. A fresh acquire first
// drops the members of its own owner (see dropOwnSource). When no permit is free it
// returns the time until the earliest permit's lease ends, negated. A limit
// other than the stored one fails with an error starting "LIMITMISMATCH".
var semaphoreAcquireScript = redis.NewScript(permitPrelude("semaphore key") + `
local limit = tonumber(ARGV[4])
local stored = redis.call('zscore', key, '\0limit')
if not stored and redis.call('zcard', key) > 0 then
  return redis.error_reply('WRONGTYPE semaphore key ' .. key .. ' holds an RW lock')
end
if ARGV[2] == '0' then
  dropown(key, ARGV[1])
end
if stored and redis.call('zcount', key, '(0', '+inf') == 0 then
  -- No holder is left to have set it: a new one may.
  redis.call('zrem', key, '\0limit')
  stored = false
end
if stored and -tonumber(stored) ~= limit then
  return redis.error_reply('LIMITMISMATCH semaphore ' .. key .. ' has limit ' .. string.format('%d', -tonumber(stored)) .. ', not ' .. ARGV[4])
end
local ttl = tonumber(ARGV[3])
if ARGV[2] ~= '0' then
  local member = ARGV[1] .. '|' .. ARGV[2]
  local s = redis.call('zscore', key, member)
  if not s then
    return 0
  end
  if tonumber(s) < now + ttl then
    redis.call('zadd', key, now + ttl, member)
  end
  if redis.call('pttl', key) < ttl then
    redis.call('pexpire', key, ttl)
  end
  return tonumber(ARGV[2])
end
if redis.call('zcount', key, '(0', '+inf') >= limit then
  local first = redis.call('zrangebyscore', key, '(0', '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return -math.max(tonumber(first[2]) - now, 1)
end
local token, err = nexttoken()
if err then
  return err
end
redis.call('zadd', key, now + ttl, ARGV[1] .. '|' .. string.format('%d', token))
if not stored then
  redis.call('zadd', key, -limit, '\0limit')
end
if redis.call('pttl', key) < ttl then
  redis.call('pexpire', key, ttl)
end
return token
`)

// semaphoreHoldersScript counts the live permits at KEYS[1].
var semaphoreHoldersScript = redis.NewScript(`
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('exists', KEYS[1]) == 0 then
  return 0
end
local n = redis.pcall('zcount', KEYS[1], '(' .. string.format('%d', now), '+inf')
if type(n) == 'table' then
  return redis.error_reply('WRONGTYPE semaphore key ' .. KEYS[1] .. ' is not a sorted set')
end
return n
`)

// isLimitMismatch reports whether err is the acquire script's answer to a
// limit other than the stored one.
func isLimitMismatch(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "LIMITMISMATCH")
}
