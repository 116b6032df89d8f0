package redislock_test

import (
	"bufio"
	"context"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redisproc"
	"github.com/redislock/redislock/internal/redistest"
)

// aclKeys and aclChannels are the key and channel patterns a service needs
// for locks under the default prefix "lock:" (see names.go): the lock keys,
// the fencing counter of each slot, the release latches, a fair lock's
// queue and waiter leases, and the release channels.
var (
	aclKeys     = []string{"~lock:*", "~redislock:{*}:fence", "~redislock:{*}:released:lock:*", "~redislock:{*}:queue:lock:*", "~redislock:{*}:waiters:lock:*"}
	aclChannels = []string{"&redislock:{*}:lock:*"}
)

// aclCommands are the commands the library sends to a single server or a
// Sentinel-managed master, and those its scripts run: nothing else. go-redis
// also sends HELLO (exempt from command permissions, like AUTH) and CLIENT
// SETINFO when it connects (see aclRules).
var aclCommands = []string{
	// requests
	"evalsha", "eval", "subscribe", "unsubscribe", "wait",
	// inside the scripts
	"del", "exists", "get", "hget", "hmget", "hset", "incr", "pexpire", "pttl", "publish", "set", "time",
	"zadd", "zcard", "zcount", "zrange", "zrangebyscore", "zrem", "zremrangebyscore", "zscan", "zscore",
}

// aclRarelySeen are the commands of aclCommands that only paths the
// workload does not take send: a release retried after a lost reply reads
// the latch (GET); a semaphore permit given back after an acquire whose
// reply was lost looks for the owner's member (ZRANGE); a channel that goes
// idle while its connection keeps others is unsubscribed (UNSUBSCRIBE; the
// last one closes the connection instead).
var aclRarelySeen = []string{"get", "zrange", "unsubscribe"}

// aclRules is the ACL SETUSER rule list for aclCommands, aclKeys and
// aclChannels on admin's server, with CLIENT SETINFO where the server has
// it (Redis 7.2 and later, Valkey): go-redis ignores its refusal, but ACL
// LOG records it. Redis 7.0 has no such subcommand and refuses the rule.
func aclRules(t *testing.T, admin *redis.Client) []string {
	rules := []string{"resetkeys", "resetchannels", "-@all"}
	if info, err := admin.Do(context.Background(), "COMMAND", "INFO", "client|setinfo").Slice(); err == nil && len(info) == 1 && info[0] != nil {
		rules = append(rules, "+client|setinfo")
	}
	for _, c := range aclCommands {
		rules = append(rules, "+"+c)
	}
	return append(append(rules, aclKeys...), aclChannels...)
}

// aclUser creates user on srv with a password and rules (after reset) and
// returns a client that logs in as it.
func aclUser(t *testing.T, srv *redistest.Server, user string, rules ...string) *redis.Client {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">pw-" + user}
	for _, r := range rules {
		args = append(args, r)
	}
	srv.Do(t, args...)
	return srv.Client(t, func(o *redis.Options) { o.Username, o.Password = user, "pw-"+user })
}

// startReplica starts a replica of srv and waits until srv counts it.
func startReplica(t *testing.T, srv *redistest.Server) {
	t.Helper()
	_, port, ok := strings.Cut(srv.Addr(), ":")
	require.True(t, ok)
	redistest.Start(t, "--replicaof", "127.0.0.1", port)
	admin := srv.Client(t)
	eventually(t, 10*time.Second, func() bool {
		info, err := admin.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, "the replica never came online")
}

// lockWorkload uses every primitive through c the way a service would:
// mutex, semaphore and RW lock, each with a waiter woken by a release,
// fencing tokens, renewals past several TTLs, WithMinReplicas (srv has a
// replica), Extend, TTL, WithLock and a loss. admin reaches the same server
// with full rights, to watch and to meddle.
func lockWorkload(t *testing.T, c, admin *redis.Client) {
	// Bounds the waiters a failed check leaves behind.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	slow := redislock.WithRetryBackoff(10*time.Second, 10*time.Second) // only a release message wakes it soon

	// woken runs acquire on a goroutine once the test's waiter is
	// subscribed, calls release, and checks acquire returns promptly.
	woken := func(t *testing.T, acquire func() error, release func()) {
		t.Helper()
		subs := func() int {
			chans, err := admin.PubSubChannels(ctx, "redislock:*").Result()
			if err != nil {
				return -1
			}
			n, err := admin.PubSubNumSub(ctx, chans...).Result()
			if err != nil {
				return -1
			}
			total := 0
			for _, v := range n {
				total += int(v)
			}
			return total
		}
		start := subs()
		done := make(chan error, 1)
		go func() { done <- acquire() }()
		eventually(t, 5*time.Second, func() bool { return subs() > start }, "the waiter never subscribed")
		time.Sleep(50 * time.Millisecond) // let its first attempt fail, so it sleeps its backoff
		released := time.Now()
		release()
		timer := time.NewTimer(5 * time.Second)
		defer timer.Stop()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-timer.C:
			t.Fatal("the waiter was not woken by the release")
		}
		require.Less(t, time.Since(released), 2*time.Second)
	}

	t.Run("mutex", func(t *testing.T) {
		name := redistest.Key(t)
		holder := newLock(t, c, name, redislock.WithTTL(30*time.Second))
		require.NoError(t, holder.Acquire(ctx))
		first := holder.Token()
		ttl, err := holder.TTL(ctx)
		require.NoError(t, err)
		require.Positive(t, ttl)
		require.NoError(t, holder.Extend(ctx, time.Minute))
		waiter := newLock(t, c, name, slow)
		woken(t, func() error { return waiter.Acquire(ctx) }, func() { require.NoError(t, holder.Release(ctx)) })
		require.Greater(t, waiter.Token(), first, "fencing tokens increase")
		require.NoError(t, waiter.Release(ctx))
	})

	t.Run("heartbeat and WithLock", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(ttl))
		err := l.WithLock(ctx, func(ctx context.Context) error {
			timer := time.NewTimer(4 * ttl)
			defer timer.Stop()
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-timer.C:
				return nil
			}
		})
		require.NoError(t, err)
	})

	t.Run("loss", func(t *testing.T) {
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(300*time.Millisecond))
		require.NoError(t, l.Acquire(ctx))
		lost := l.Lost()
		require.NoError(t, admin.Del(ctx, l.Key()).Err())
		closedWithin(t, lost, 2*time.Second)
		require.ErrorIs(t, l.Release(ctx), redislock.ErrLockLost)
	})

	t.Run("semaphore", func(t *testing.T) {
		name := redistest.Key(t)
		var sems []*redislock.Lock
		for range 3 {
			s, err := redislock.NewSemaphore(c, name, 2, redislock.WithTTL(time.Second), slow)
			require.NoError(t, err)
			sems = append(sems, s)
		}
		require.NoError(t, sems[0].Acquire(ctx))
		require.NoError(t, sems[1].Acquire(ctx))
		n, err := redislock.SemaphoreHolders(ctx, c, name)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		woken(t, func() error { return sems[2].Acquire(ctx) }, func() { require.NoError(t, sems[0].Release(ctx)) })
		require.Greater(t, sems[2].Token(), sems[1].Token())
		require.NoError(t, sems[1].Release(ctx))
		require.NoError(t, sems[2].Release(ctx))
	})

	t.Run("rwlock", func(t *testing.T) {
		name := redistest.Key(t)
		reading, err := redislock.NewRWLock(c, name, redislock.WithTTL(time.Second), slow)
		require.NoError(t, err)
		writing, err := redislock.NewRWLock(c, name, redislock.WithTTL(time.Second), slow)
		require.NoError(t, err)
		require.NoError(t, reading.Reader().Acquire(ctx))
		woken(t, func() error { return writing.Writer().Acquire(ctx) }, func() { require.NoError(t, reading.Reader().Release(ctx)) })
		require.NoError(t, writing.Writer().Release(ctx))
	})

	t.Run("fair", func(t *testing.T) {
		name := redistest.Key(t)
		holder := newLock(t, c, name, redislock.WithFair())
		waiter := newLock(t, c, name, redislock.WithFair())
		require.NoError(t, holder.Acquire(ctx))
		woken(t, func() error { return waiter.Acquire(ctx) }, func() { require.NoError(t, holder.Release(ctx)) })
		require.NoError(t, waiter.Release(ctx))
	})

	t.Run("WithMinReplicas", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		l := newLock(t, c, redistest.Key(t), redislock.WithTTL(ttl), redislock.WithMinReplicas(1, 200*time.Millisecond))
		require.NoError(t, l.Acquire(ctx))
		lost := l.Lost()
		timer := time.NewTimer(4 * ttl)
		defer timer.Stop()
		select {
		case <-lost:
			t.Fatal("lost while renewed with WAIT")
		case <-timer.C:
		}
		require.NoError(t, l.Extend(ctx, 0))
		require.NoError(t, l.Release(ctx))
	})

	// The notifier unsubscribes a second after a channel's last waiter left.
	eventually(t, 10*time.Second, func() bool {
		chans, err := admin.PubSubChannels(ctx, "redislock:*").Result()
		return err == nil && len(chans) == 0
	}, "release channels still subscribed")
}

// A service that runs as the least-privileged user of aclRules can use every
// primitive, and nothing it does is denied; the same user can neither read
// nor write any other key.
func TestACLLeastPrivilege(t *testing.T) {
	srv := redistest.Start(t)
	startReplica(t, srv)
	admin := srv.Client(t)
	ctx := context.Background()
	rules := aclRules(t, admin)
	t.Logf("acl: ACL SETUSER locksvc on >PASSWORD %s", strings.Join(rules, " "))
	c := aclUser(t, srv, "locksvc", rules...)
	require.NoError(t, admin.Do(ctx, "ACL", "LOG", "RESET").Err())

	lockWorkload(t, c, admin)

	log, err := admin.Do(ctx, "ACL", "LOG").Slice()
	require.NoError(t, err)
	assert.Empty(t, log, "the library needed something the ACL denies")

	for _, key := range []string{"other", "locks:x", "redislock:x", "redislock:{1}:other"} {
		err := c.Get(ctx, key).Err()
		assert.ErrorContains(t, err, "NOPERM", "GET %s", key)
		err = c.Set(ctx, key, "x", 0).Err()
		assert.ErrorContains(t, err, "NOPERM", "SET %s", key)
	}
	assert.ErrorContains(t, c.Publish(ctx, "other", "x").Err(), "NOPERM")
	for _, cmd := range [][]any{{"keys", "*"}, {"flushall"}, {"config", "get", "*"}, {"script", "flush"}, {"hgetall", "lock:x"}} {
		assert.ErrorContains(t, c.Do(ctx, cmd...).Err(), "NOPERM", "%v", cmd)
	}
}

// The commands of aclCommands are exactly those the library sends, seen by
// MONITOR while the workload runs as a user allowed everything.
func TestACLCommandsAreTheLibrarys(t *testing.T) {
	srv := redistest.Start(t)
	startReplica(t, srv)
	admin := srv.Client(t)
	c := aclUser(t, srv, "anything", "~*", "&*", "+@all")
	ctx := context.Background()

	// MONITOR through the command-line client: go-redis's Monitor races
	// with its own pool (go-redis 9.23). Script commands come from "lua".
	progs, err := redisproc.Selected()
	require.NoError(t, err)
	host, port, _ := strings.Cut(srv.Addr(), ":")
	mon := exec.Command(progs.CLI, "-h", host, "-p", port, "monitor")
	out, err := mon.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, mon.Start())
	byAddr := map[string][]string{}
	authed := map[string]bool{} // connections that logged in as a user: c's
	scanned := make(chan struct{})
	started := make(chan struct{})
	marker, markerSeen := redistest.Key(t), make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == "OK" {
				close(started)
				continue
			}
			if strings.Contains(line, marker) {
				close(markerSeen)
				continue
			}
			addr, name, ok := monitoredCommand(line)
			if !ok {
				continue
			}
			byAddr[addr] = append(byAddr[addr], name)
			if name == "hello" && strings.Contains(strings.ToLower(line), `"auth"`) {
				authed[addr] = true
			}
		}
	}()
	<-started
	lockWorkload(t, c, admin)
	// MONITOR shows commands in the order they run: once this ECHO shows,
	// all of the workload's have.
	require.NoError(t, admin.Echo(ctx, marker).Err())
	timer := time.NewTimer(5 * time.Second)
	select {
	case <-markerSeen:
	case <-timer.C:
		t.Error("MONITOR never showed the marker")
	}
	timer.Stop()
	_ = mon.Process.Kill()
	<-scanned
	_ = mon.Wait()

	seen := map[string]bool{}
	for addr, names := range byAddr {
		if addr == "lua" || authed[addr] {
			for _, n := range names {
				seen[n] = true
			}
		}
	}
	var got []string
	for name := range seen {
		got = append(got, name)
	}
	slices.Sort(got)
	t.Logf("acl: commands seen: %s", strings.Join(got, " "))
	allowed := append(slices.Clone(aclCommands), "hello", "auth", "client|setinfo")
	for _, name := range got {
		assert.Contains(t, allowed, name, "the library sent a command the ACL does not allow")
	}
	for _, name := range aclCommands {
		if !seen[name] {
			assert.Contains(t, aclRarelySeen, name, "the ACL allows a command the library did not send")
		}
	}
}

// monitoredCommand returns the client address and command name of a
// MONITOR line, with its subcommand for CLIENT and the like.
func monitoredCommand(line string) (addr, name string, ok bool) {
	_, rest, ok := strings.Cut(line, " [")
	if !ok {
		return "", "", false
	}
	client, rest, ok := strings.Cut(rest, "] ")
	if !ok {
		return "", "", false
	}
	_, addr, _ = strings.Cut(client, " ")
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", "", false
	}
	unq := func(s string) string {
		s, _ = strconv.Unquote(s)
		return strings.ToLower(s)
	}
	name = unq(fields[0])
	if (name == "client" || name == "acl" || name == "config" || name == "cluster" || name == "pubsub") && len(fields) > 1 {
		name += "|" + unq(fields[1])
	}
	return addr, name, true
}

// without returns rules less the ones in drop.
func without(rules []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(rules), func(r string) bool { return slices.Contains(drop, r) })
}

// An ACL that forbids what the library needs must fail the call with the
// server's NOPERM error, which names the command, key or channel: never a
// hang, never a hold reported lost while it is not.
func TestACLDenied(t *testing.T) {
	srv := redistest.Start(t)
	admin := srv.Client(t)
	ctx := context.Background()
	rules := aclRules(t, admin)

	t.Run("no EVALSHA", func(t *testing.T) {
		c := aclUser(t, srv, "noevalsha", without(rules, "+evalsha")...)
		l := newLock(t, c, redistest.Key(t))
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		start := time.Now()
		err := l.Acquire(ctx)
		t.Logf("acl: Acquire without EVALSHA: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
		require.ErrorContains(t, err, "NOPERM")
		require.ErrorContains(t, err, "evalsha")
		require.NoError(t, ctx.Err(), "Acquire waited instead of failing")
		ok, err := l.TryAcquire(ctx)
		require.False(t, ok)
		require.ErrorContains(t, err, "NOPERM")
		require.False(t, l.Held())
		require.Zero(t, admin.Exists(ctx, l.Key()).Val())
	})

	t.Run("no fencing counter key", func(t *testing.T) {
		c := aclUser(t, srv, "nofence", without(rules, "~redislock:{*}:fence")...)
		l := newLock(t, c, redistest.Key(t))
		err := l.Acquire(ctx)
		t.Logf("acl: Acquire without the fencing counter: %v", err)
		// The server checks a script's KEYS before it runs it, and does not
		// say which key it refused; the error names the lock.
		require.ErrorContains(t, err, "NOPERM")
		require.ErrorContains(t, err, l.Key())
		require.Zero(t, admin.Exists(ctx, l.Key()).Val(), "the refused script wrote the lock key")
	})

	// Without the channel, acquiring and renewing work; the release script
	// deletes the key and sets the latch, then its PUBLISH is refused, and
	// waiters cannot subscribe.
	t.Run("no channel", func(t *testing.T) {
		c := aclUser(t, srv, "nochannel", without(rules, aclChannels...)...)
		name := redistest.Key(t)
		const ttl = 300 * time.Millisecond
		holder := newLock(t, c, name, redislock.WithTTL(ttl))
		require.NoError(t, holder.Acquire(ctx))
		waiter := newLock(t, c, name, redislock.WithTTL(ttl))
		acquired := make(chan error, 1)
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		go func() { acquired <- waiter.Acquire(waitCtx) }()

		lost := holder.Lost()
		timer := time.NewTimer(4 * ttl)
		select {
		case <-lost:
			t.Fatal("the holder was told of a loss while it held the lock")
		case <-timer.C:
		}
		timer.Stop()
		require.True(t, holder.Held())

		released := time.Now()
		err := holder.Release(ctx)
		t.Logf("acl: Release without the channel: %v", err)
		// Not NOPERM: Redis 7.0 fails the script, after its DEL, with "ERR
		// The user executing the script can't publish to the channel",
		// Valkey 8 with "ERR ACL failure in script: No permissions to access
		// a channel".
		require.ErrorContains(t, err, "channel")
		require.False(t, holder.Held())
		require.Zero(t, admin.Exists(ctx, holder.Key()).Val(), "the key stays")
		select {
		case err := <-acquired:
			require.NoError(t, err)
		case <-waitCtx.Done():
			t.Fatal("the waiter hung")
		}
		t.Logf("acl: without the channel, the waiter acquired %v after the release (polling)", time.Since(released).Round(time.Millisecond))
		require.NoError(t, ctx.Err())
		_ = waiter.Release(ctx)
	})
}
