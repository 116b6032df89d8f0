package redislock

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % 16384}, // the CRC-16/XMODEM check value
		{"somekey", 11058},            // values from the CLUSTER KEYSLOT documentation
		{"foo{hash_tag}", 2515},
		{"bar{hash_tag}", 2515},
		{"{}hash_tag", crc16("{}hash_tag") % 16384}, // an empty tag does not count
		{"a{b}c{d}", crc16("b") % 16384},            // only the first tag counts
		{"x}y{", crc16("x}y{") % 16384},             // no closing brace after '{'
	} {
		if got := keySlot(tc.key); got != tc.want {
			t.Errorf("keySlot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestDerivedNamesShareTheKeySlot(t *testing.T) {
	for _, key := range []string{"lock:a", "lock:{user1}:x", "lock:{", "lock:}{", "lock:{}", "", "lock:\x00"} {
		for _, name := range []string{channelFor(key), fenceKeyFor(key), latchKeyFor(key)} {
			if got, want := keySlot(name), keySlot(key); got != want {
				t.Errorf("%q for key %q is in slot %d, want slot %d", name, key, got, want)
			}
		}
	}
}

// A Lock's names, built in one allocation, are the derived names of its key.
func TestNewNames(t *testing.T) {
	for _, tc := range []struct{ prefix, name, owner string }{
		{"lock:", "a", "me"},
		{"lock:", "{user1}:x", ""},
		{"p:", strings.Repeat("n", 300), "o"}, // longer than the stack buffer
	} {
		ln := newNames(tc.prefix, tc.name, tc.owner)
		key := tc.prefix + tc.name
		owner := tc.owner
		if owner == "" {
			_, err := uuid.Parse(ln.owner)
			require.NoError(t, err, "a generated owner is a UUID")
			owner = ln.owner
		}
		want := lockNames{key: key, channel: channelFor(key), fence: fenceKeyFor(key), latch: latchKeyFor(key) + ":" + owner, owner: owner}
		assert.Equal(t, want, ln)
	}
	a, b := newNames("lock:", "a", ""), newNames("lock:", "a", "")
	assert.NotEqual(t, a.owner, b.owner, "generated owners differ")
}

// Every client takes a name's tokens from the counter of the key's slot,
// so that tokens of one name are ordered whatever kind of client took them.
func TestFenceKeyOfClient(t *testing.T) {
	single := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	failover := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	cluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	for _, c := range []redis.UniversalClient{single, failover, ring, cluster} {
		defer c.Close()
	}
	for _, c := range []redis.UniversalClient{single, failover, ring, cluster} {
		for _, p := range []struct {
			prim  *primitive
			extra []any
		}{{mutex, mutexExtra}, {semaphore, []any{int64(1)}}, {rwReader, []any{"r", int64(1)}}, {fairMutex, fairExtra}} {
			l, err := newLock(c, "x", p.prim, nil, p.extra)
			require.NoError(t, err)
			assert.Equal(t, fenceKeyFor(l.key), l.acquireKeys[1], "%T, %s", c, p.prim.name)
		}
	}
}

// Locks made with equal options share them; their owners stay their own.
func TestLocksShareEqualOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	newLock := func(opts ...Option) *Lock {
		l, err := New(c, "x", opts...)
		require.NoError(t, err)
		return l
	}
	a, b := newLock(), newLock()
	assert.Same(t, a.opts, b.opts, "the defaults")
	assert.NotEqual(t, a.owner, b.owner)
	assert.True(t, a.opts.ownerUnique)

	c1, c2 := newLock(WithTTL(time.Minute), WithOwner("c1")), newLock(WithTTL(time.Minute), WithOwner("c2"))
	assert.Same(t, c1.opts, c2.opts, "options that differ in the owner alone")
	assert.Equal(t, []string{"c1", "c2"}, []string{c1.owner, c2.owner})
	assert.False(t, c1.opts.ownerUnique)
	assert.Empty(t, c1.opts.owner)

	d := newLock(WithTTL(time.Second))
	assert.NotSame(t, c1.opts, d.opts)
	assert.Equal(t, time.Minute, c1.opts.ttl, "a Lock made later leaves the options of earlier ones as they were")
	assert.Equal(t, time.Second, d.opts.ttl)
	assert.Equal(t, int64(1000), d.opts.ttlMs)
}
