package redislock

import (
	"strconv"
	"strings"
	"sync"
)

// Names derived from a lock key carry "{T}", where T is a short tag that
// hashes to the key's Redis Cluster slot, so that they live on the key's
// shard whatever the key contains and one script may use both.

// channelFor returns the pub/sub channel on which releases of key are
// announced. Channels and keys live in separate namespaces; the prefix keeps
// it apart from other applications' channels.
func channelFor(key string) string { return derivedNames(key).channel }

// fenceKeyFor returns the fencing counter of key's cluster slot: one
// integer shared by every lock name of the slot, so that the counters in a
// database number at most 16,384 whatever the number of names. It never
// expires.
func fenceKeyFor(key string) string { return derivedNames(key).fence }

// latchKeyFor returns the release latch of key: the token of the hold last
// released, kept for [ReleaseLatchTTL] so that a retried release is known to
// have succeeded.
func latchKeyFor(key string) string { return derivedNames(key).latch }

// slotName returns "redislock:{T}:" + suffix, in key's slot.
func slotName(key, suffix string) string {
	var b [12]byte
	tag := strconv.AppendUint(b[:0], uint64(slotTag(keySlot(key))), 10)
	return "redislock:{" + string(tag) + "}:" + suffix
}

// names are the names derived from one lock key.
type names struct{ channel, fence, latch string }

func derivedNames(key string) names {
	var b [12]byte
	tag := strconv.AppendUint(b[:0], uint64(slotTag(keySlot(key))), 10)
	// string(tag) inside a concatenation does not allocate.
	return names{
		channel: "redislock:{" + string(tag) + "}:" + key,
		fence:   "redislock:{" + string(tag) + "}:fence",
		latch:   "redislock:{" + string(tag) + "}:released:" + key,
	}
}

// keySlot is the Redis Cluster hash slot of key: CRC16 of its hash tag (the
// part between the first '{' and the next '}', when not empty) or of the
// whole key, modulo 16384.
func keySlot(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

var slotTags struct {
	once sync.Once
	tags [16384]uint32
}

// slotTag returns the smallest number whose decimal form hashes to slot:
// the shortest hash tag that puts a name into that slot.
func slotTag(slot uint16) uint32 {
	slotTags.once.Do(func() {
		var buf [12]byte
		seen := make([]bool, len(slotTags.tags))
		left := len(slotTags.tags)
		for i := uint32(0); left > 0; i++ {
			s := crc16(strconv.AppendUint(buf[:0], uint64(i), 10)) % 16384
			if !seen[s] {
				seen[s] = true
				slotTags.tags[s] = i
				left--
			}
		}
	})
	return slotTags.tags[slot]
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum
// Redis Cluster hashes keys with.
func crc16[T string | []byte](s T) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
