package redislock

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// An RWLock is one owner's handle on a readers-writer lock: many readers or
// one writer hold the name at once. Its [RWLock.Reader] and [RWLock.Writer]
// are ordinary Locks — reentrant, renewed by the heartbeat, reported lost,
// fenced — that share the RWLock's owner identity. Each reader's hold is a
// lease of its own: a dead reader frees its share when its lease ends on the
// server's clock.
//
// Writers are not starved: once a writer waits, readers that do not hold the
// lock yet wait behind it. The owner's writer may take the owner's reader
// (a downgrade: take the read level, then release the write level); the
// owner's reader asking for the write lock fails at once with
// ErrWouldDeadlock instead of waiting for itself. Releasing the write lock
// wakes the waiting readers; releasing the last read level wakes a writer.
//
// Give each goroutine that needs exclusion its own RWLock, as with Lock.
type RWLock struct {
	reader, writer *Lock
}

// NewRWLock returns an RWLock on the key prefix+name, which holds a sorted
// set (a mutex or semaphore of the same name and prefix would collide with
// it: ErrWrongType). The options apply to both Locks; [WithOwner] sets the
// RWLock's owner identity, which its Locks extend with ":r" and ":w". It
// makes no Redis call and fails with ErrInvalidArgument as [New] does.
func NewRWLock(client redis.UniversalClient, name string, opts ...Option) (*RWLock, error) {
	var o options
	if err := o.init(opts); err != nil {
		return nil, err
	}
	owner := o.owner
	own := []Option{nil, nil}
	if !o.ownerSet {
		owner = uuid.NewString()
		own[1] = func(o *options) { o.ownerUnique = true } // generated here, as New would
	} else {
		own[1] = func(*options) {}
	}
	// A waiting writer marks the lock for a little longer than its longest
	// sleep between attempts, so that readers wait behind it while it lives.
	mark := int64(2*o.retryMax.Milliseconds() + 100)
	own[0] = WithOwner(owner + ":r")
	reader, err := newLock(client, name, rwReader, append(opts[:len(opts):len(opts)], own...), []any{"r", mark})
	if err != nil {
		return nil, err
	}
	own[0] = WithOwner(owner + ":w")
	writer, err := newLock(client, name, rwWriter, append(opts[:len(opts):len(opts)], own...), []any{"w", mark})
	if err != nil {
		return nil, err
	}
	rw := &RWLock{reader: reader, writer: writer}
	reader.bypass = writer.holding
	writer.guard = func() error {
		if reader.Count() > 0 {
			return fmt.Errorf("%w: the writer of %q was asked for while this RWLock's reader holds it", ErrWouldDeadlock, writer.key)
		}
		return nil
	}
	return rw, nil
}

// Reader returns the Lock that takes the read lock.
func (rw *RWLock) Reader() *Lock { return rw.reader }

// Writer returns the Lock that takes the write lock.
func (rw *RWLock) Writer() *Lock { return rw.writer }

// Readers and writers differ only in their acquire argument; they share
// scripts, but not a primitive value, so that each is shared or not.
var (
	rwReleaseScript = newScript(strings.ReplaceAll(permitReleaseSource, "WAKE_CONDITION",
		"left == 0 or string.sub(ARGV[1], -2) == ':w'"))
	rwReader = func() *primitive {
		p := newPrimitive("rwlock-reader", true, rwAcquireScript, rwReleaseScript, permitRenewScript, permitPTTLScript)
		p.yield = true
		return p
	}()
	rwWriter = func() *primitive {
		p := newPrimitive("rwlock-writer", false, rwAcquireScript, rwReleaseScript, permitRenewScript, permitPTTLScript)
		p.waitArg, p.leave = true, rwLeaveScript
		return p
	}()
)

// rwLeaveScript takes a writer that stops waiting out of the lock: its mark
// goes, and if no hold is left, the readers its mark kept out are told (see
// primitive.leave).
var rwLeaveScript = redis.NewScript(`
local key = KEYS[1]
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local removed = redis.pcall('zrem', key, '\0writer-waiting|' .. ARGV[1])
if type(removed) ~= 'number' or removed == 0 then
  return 0
end
redis.call('zremrangebyscore', key, 0, now)
if redis.call('zcard', key) == 0 then
  redis.call('del', key)
end
if redis.call('zcount', key, '(0', '(2251799813685248') == 0 then
  redis.call(ARGV[3], ARGV[2], '')
end
return 1
`)

// rwAcquireScript takes or re-enters a read or write hold; see primitive
// and permits.go for the conventions.
//
//	ARGV[4] "r" or "w", ARGV[5] how long a waiting writer's mark lasts, in
//	ms (0: a writer that will not wait leaves no mark)
//
// A reader gets in when no other owner's writer holds and no writer's mark
// is live (its own writer may hold: a downgrade); one kept out by a mark
// alone gets 0. A writer gets in when no hold at all is live; otherwise it
// sets its mark, which keeps new readers out until it expires, the writer
// gets in, or it stops waiting (rwLeaveScript). A key holding a semaphore
// fails with an error starting "WRONGTYPE".
var rwAcquireScript = redis.NewScript(permitPrelude("rwlock key") + `
local W, M = 1125899906842624, 2251799813685248
if redis.call('zscore', key, '\0limit') then
  return redis.error_reply('WRONGTYPE rwlock key ' .. key .. ' holds a semaphore')
end
redis.call('zremrangebyscore', key, W, W + now)
redis.call('zremrangebyscore', key, M, M + now)
local ttl = tonumber(ARGV[3])
local off = 0
if ARGV[4] == 'w' then off = W end
if ARGV[2] ~= '0' then
  local member = ARGV[1] .. '|' .. ARGV[2]
  local s = redis.call('zscore', key, member)
  if not s then
    return 0
  end
  if tonumber(s) < off + now + ttl then
    redis.call('zadd', key, off + now + ttl, member)
  end
  if redis.call('pttl', key) < ttl then
    redis.call('pexpire', key, ttl)
  end
  return tonumber(ARGV[2])
end
dropown(key, ARGV[1])
local base = string.sub(ARGV[1], 1, -3)
local writer = redis.call('zrangebyscore', key, '(' .. string.format('%d', W), '(' .. string.format('%d', M), 'WITHSCORES', 'LIMIT', 0, 1)
if ARGV[4] == 'r' then
  local own = writer[1] ~= nil and string.sub(writer[1], 1, #base + 3) == base .. ':w|'
  if writer[1] ~= nil and not own then
    return -math.max(tonumber(writer[2]) - W - now, 1)
  end
  if not own and redis.call('zcount', key, '(' .. string.format('%d', M), '+inf') > 0 then
    return 0
  end
else
  local first = redis.call('zrangebyscore', key, '(0', '(' .. string.format('%d', M), 'WITHSCORES', 'LIMIT', 0, 1)
  if first[1] ~= nil then
    if tonumber(ARGV[5]) > 0 then
      redis.call('zadd', key, 'GT', M + now + tonumber(ARGV[5]), '\0writer-waiting|' .. ARGV[1])
      if redis.call('pttl', key) < tonumber(ARGV[5]) then
        redis.call('pexpire', key, ARGV[5])
      end
    end
    local s = tonumber(first[2])
    if s > W then s = s - W end
    return -math.max(s - now, 1)
  end
end
local token, err = nexttoken()
if err then
  return err
end
redis.call('zadd', key, off + now + ttl, ARGV[1] .. '|' .. string.format('%d', token))
if ARGV[4] == 'w' then
  redis.call('zrem', key, '\0writer-waiting|' .. ARGV[1])
end
if redis.call('pttl', key) < ttl then
  redis.call('pexpire', key, ttl)
end
return token
`)
