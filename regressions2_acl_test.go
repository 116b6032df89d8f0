package redislock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// review2PreviousACL is the least-privilege ACL line the README gave before
// the hand-off (git show c5551b6:README.md), which deployed services run.
const review2PreviousACL = "resetkeys resetchannels -@all +evalsha +eval +subscribe +unsubscribe +wait +del +exists +get +hget +hmget +hset +incr +pexpire +pttl +publish +set +time +zadd +zcard +zcount +zrange +zrangebyscore +zrem +zremrangebyscore +zscan +zscore ~lock:* ~redislock:{*}:fence ~redislock:{*}:released:lock:* ~redislock:{*}:queue:lock:* ~redislock:{*}:waiters:lock:* &redislock:{*}:lock:*"

// Promise (README "TLS and ACLs": a service needs only this ACL user; no
// upgrade note says the line changed). Was broken: every mutex acquire now
// declares the waits key (named as the release channel) among its script
// keys, which the server checks before running the script, so a service
// upgraded under the ACL the README gave before cannot take even a free
// lock: NOPERM on every Acquire.
func TestRegressionPreviousACLStillAcquires(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := aclUser(t, srv, "locksvc", strings.Fields(review2PreviousACL)...)
	l := newLock(t, c, redistest.Key(t), redislock.WithWaitTimeout(time.Second))
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
}
