package redislock_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
)

func TestNewRejectsBadInput(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: New makes no call
	t.Cleanup(func() { _ = c.Close() })
	var nilClient *redis.Client
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		lock   string
		opts   []redislock.Option
		want   string // part of the error text naming the bad value
	}{
		{"nil client", nil, "n", nil, "nil client"},
		{"typed nil client", nilClient, "n", nil, "nil client"},
		{"empty name", c, "", nil, "empty lock name"},
		{"nil option", c, "n", []redislock.Option{nil}, "nil Option"},
		{"zero TTL", c, "n", []redislock.Option{redislock.WithTTL(0)}, "TTL 0s"},
		{"TTL below 1ms", c, "n", []redislock.Option{redislock.WithTTL(time.Microsecond)}, "TTL 1µs"},
		{"TTL within the margin", c, "n", []redislock.Option{redislock.WithTTL(2 * time.Millisecond)}, "margin"},
		{"negative TTL", c, "n", []redislock.Option{redislock.WithTTL(-time.Second)}, "TTL -1s"},
		{"zero heartbeat", c, "n", []redislock.Option{redislock.WithHeartbeat(0)}, "heartbeat interval 0s"},
		{"negative heartbeat", c, "n", []redislock.Option{redislock.WithHeartbeat(-time.Second)}, "heartbeat interval -1s"},
		{"heartbeat equal to TTL", c, "n", []redislock.Option{redislock.WithTTL(time.Second), redislock.WithHeartbeat(time.Second)}, "heartbeat interval 1s"},
		{"heartbeat above TTL", c, "n", []redislock.Option{redislock.WithHeartbeat(time.Minute)}, "heartbeat interval 1m0s"},
		{"heartbeat and none", c, "n", []redislock.Option{redislock.WithHeartbeat(time.Second), redislock.WithoutHeartbeat()}, "both given"},
		{"negative wait timeout", c, "n", []redislock.Option{redislock.WithWaitTimeout(-time.Second)}, "wait timeout -1s"},
		{"zero backoff", c, "n", []redislock.Option{redislock.WithRetryBackoff(0, time.Second)}, "retry backoff 0s"},
		{"negative backoff max", c, "n", []redislock.Option{redislock.WithRetryBackoff(time.Millisecond, -time.Second)}, "retry backoff"},
		{"backoff min above max", c, "n", []redislock.Option{redislock.WithRetryBackoff(time.Second, time.Millisecond)}, "min 1s is above max 1ms"},
		{"empty prefix", c, "n", []redislock.Option{redislock.WithKeyPrefix("")}, "empty key prefix"},
		{"empty owner", c, "n", []redislock.Option{redislock.WithOwner("")}, "empty owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := redislock.New(tc.client, tc.lock, tc.opts...)
			require.Error(t, err)
			assert.Nil(t, l)
			assert.ErrorIs(t, err, redislock.ErrInvalidArgument)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestNewAcceptsUnusualNames(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	for _, name := range []string{"{slot}", "a\x00b", strings.Repeat("n", 1<<20), "ünïcode"} {
		l, err := redislock.New(c, name, redislock.WithKeyPrefix("p:"), redislock.WithOwner("me"))
		require.NoError(t, err)
		assert.Equal(t, "p:"+name, l.Key())
		assert.Equal(t, name, l.Name())
		assert.Equal(t, "me", l.Owner())
		assert.False(t, l.Held())
		assert.Zero(t, l.Count())
	}
}

func TestNewDefaults(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = c.Close() })
	a, err := redislock.New(c, "n")
	require.NoError(t, err)
	b, err := redislock.New(c, "n")
	require.NoError(t, err)
	assert.Equal(t, "lock:n", a.Key())
	assert.NotEmpty(t, a.Owner())
	assert.NotEqual(t, a.Owner(), b.Owner(), "each Lock gets its own owner")
}
