package redislock

import (
	"crypto/rand"
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
// integer shared by every lock name of the slot, so that the counters
// number at most 16,384 whatever the number of names, and a script may use
// it with the key. It never expires.
func fenceKeyFor(key string) string { return derivedNames(key).fence }

// latchKeyFor returns the release latch of key: the token of the hold last
// released, kept for [ReleaseLatchTTL] so that a retried release is known to
// have succeeded. A Lock's latch adds ":" and its owner (see newNames).
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

// lockNames are a Lock's strings: its key, the names derived from it, and
// its owner.
type lockNames struct{ key, channel, fence, latch, owner string }

// newNames returns the names of the Lock on the key prefix+name whose owner
// is owner or, when owner is "", a new random UUID; its fencing counter is
// the key's slot's. They take one
// allocation, as a Lock made for each entity should: the key is the end of
// the channel (channelFor), the owner the end of the latch
// (latchKeyFor + ":" + owner).
func newNames(prefix, name, owner string) lockNames {
	var k [128]byte // longer keys are copied to the heap, once
	slot := keySlot(append(append(k[:0], prefix...), name...))
	var t [12]byte
	tag := strconv.AppendUint(t[:0], uint64(slotTag(slot)), 10)
	var id [36]byte
	ownerLen := len(owner)
	if owner == "" {
		ownerLen = len(id)
	}
	const head = len("redislock:{}:")
	n := 2*(head+len(tag)+len(prefix)+len(name)) + len("released:") + 1 + ownerLen +
		head + len(tag) + len("fence")
	var b strings.Builder
	b.Grow(n)
	part := func(s ...string) (start, end int) {
		start = b.Len()
		for _, s := range s {
			b.WriteString(s)
		}
		return start, b.Len()
	}
	ch0, ch1 := part("redislock:{", string(tag), "}:", prefix, name)
	la0, own0 := part("redislock:{", string(tag), "}:released:", prefix, name, ":")
	if owner == "" {
		newUUID(&id)
		b.Write(id[:])
	} else {
		b.WriteString(owner)
	}
	la1 := b.Len()
	fe0, fe1 := part("redislock:{", string(tag), "}:fence")
	s := b.String()
	ln := lockNames{
		key:     s[ch1-len(prefix)-len(name) : ch1],
		channel: s[ch0:ch1],
		fence:   s[fe0:fe1],
		latch:   s[la0:la1],
		owner:   s[own0:la1],
	}
	return ln
}

// newUUID writes a random (version 4) UUID into id in its text form, as
// uuid.NewString does, without allocating.
func newUUID(id *[36]byte) {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails, as documented
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	const hexdigits = "0123456789abcdef"
	j := 0
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			id[j] = '-'
			j++
		}
		id[j], id[j+1] = hexdigits[c>>4], hexdigits[c&0x0f]
		j += 2
	}
}

// keySlot is the Redis Cluster hash slot of key: CRC16 of its hash tag (the
// part between the first '{' and the next '}', when not empty) or of the
// whole key, modulo 16384.
func keySlot[T string | []byte](key T) uint16 {
	if i := indexByte(key, '{'); i >= 0 {
		if j := indexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % 16384
}

func indexByte[T string | []byte](s T, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
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
