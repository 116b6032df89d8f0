package clustertest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/clustertest"
	"github.com/redislock/redislock/internal/faketb"
	"github.com/redislock/redislock/internal/redisproc"
	"github.com/redislock/redislock/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// direct returns a plain client of addr, closed by t.Cleanup.
func direct(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// replication returns the fields of INFO replication of the server at c.
func replication(t *testing.T, c *redis.Client) map[string]string {
	t.Helper()
	s, err := c.Info(t.Context(), "replication").Result()
	require.NoError(t, err)
	m := map[string]string{}
	for _, line := range strings.Split(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// eventually calls fn until it returns nil, failing t with its last error
// after timeout. It gives clients time to find a new master.
func eventually(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not done within %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := clustertest.StartCluster(t, 3, 1)
	t.Logf("StartCluster(3, 1): %v", time.Since(start))
	cc := c.Client(t)
	ctx := t.Context()

	var masters []string
	t.Run("topology", func(t *testing.T) {
		addrs := c.Addrs()
		require.Len(t, addrs, 6)
		var replicas int
		for _, addr := range addrs {
			info, err := direct(t, addr).ClusterInfo(ctx).Result()
			require.NoError(t, err)
			assert.Contains(t, info, "cluster_state:ok", addr)
			switch repl := replication(t, direct(t, addr)); repl["role"] {
			case "master":
				masters = append(masters, addr)
			case "slave":
				replicas++
				assert.Equal(t, "up", repl["master_link_status"], addr)
			}
		}
		assert.Len(t, masters, 3)
		assert.Equal(t, 3, replicas)
		for _, m := range masters {
			r := c.ReplicaOf(t, m)
			repl := replication(t, direct(t, r))
			assert.Equal(t, m, repl["master_host"]+":"+repl["master_port"], "ReplicaOf(%s) = %s", m, r)
		}
	})
	require.Len(t, masters, 3)

	t.Run("MasterForKey", func(t *testing.T) {
		seen := map[string]bool{}
		for i := range 30 {
			key := fmt.Sprintf("key%d", i)
			require.NoError(t, cc.Set(ctx, key, i, 0).Err())
			m := c.MasterForKey(t, key)
			seen[m] = true
			got, err := direct(t, m).Get(ctx, key).Int()
			require.NoError(t, err, "key %s on %s", key, m)
			assert.Equal(t, i, got, key)
			for _, other := range masters {
				if other != m {
					err := direct(t, other).Get(ctx, key).Err()
					assert.ErrorContains(t, err, "MOVED", "key %s on %s", key, other)
				}
			}
		}
		assert.Len(t, seen, 3, "30 keys should be spread over all masters")
	})

	t.Run("MoveSlot", func(t *testing.T) {
		keys := []string{"{moved}a", "{moved}b", "{moved}c"}
		for _, k := range keys {
			require.NoError(t, cc.Set(ctx, k, "v-"+k, 0).Err())
		}
		slot, err := cc.ClusterKeySlot(ctx, keys[0]).Result()
		require.NoError(t, err)
		src := c.MasterForKey(t, keys[0])
		dst := masters[0]
		if dst == src {
			dst = masters[1]
		}

		start := time.Now()
		c.MoveSlot(t, int(slot), dst)
		t.Logf("MoveSlot: %v", time.Since(start))
		c.MoveSlot(t, int(slot), dst) // already there: does nothing

		assert.Equal(t, dst, c.MasterForKey(t, keys[0]))
		n, err := direct(t, dst).ClusterCountKeysInSlot(ctx, int(slot)).Result()
		require.NoError(t, err)
		assert.EqualValues(t, len(keys), n, "keys in slot %d on %s", slot, dst)
		assert.ErrorContains(t, direct(t, src).Get(ctx, keys[0]).Err(), "MOVED", "the source must redirect")
		for _, k := range keys {
			got, err := cc.Get(ctx, k).Result()
			require.NoError(t, err, k)
			assert.Equal(t, "v-"+k, got)
		}
	})

	t.Run("Failover", func(t *testing.T) {
		const key = "failover-key"
		require.NoError(t, cc.Set(ctx, key, "before", 0).Err())
		old := c.MasterForKey(t, key)
		replica := c.ReplicaOf(t, old)

		start := time.Now()
		c.Failover(t, replica)
		t.Logf("Failover: %v", time.Since(start))

		assert.Equal(t, replica, c.MasterForKey(t, key))
		assert.Equal(t, "master", replication(t, direct(t, replica))["role"])
		assert.Equal(t, old, c.ReplicaOf(t, replica), "the old master must now replicate the new one")
		eventually(t, 10*time.Second, func() error {
			got, err := cc.Get(ctx, key).Result()
			if err == nil && got != "before" {
				err = fmt.Errorf("got %q", got)
			}
			return err
		})
		eventually(t, 10*time.Second, func() error { return cc.Set(ctx, key, "after", 0).Err() })
		got, err := direct(t, replica).Get(ctx, key).Result()
		require.NoError(t, err)
		assert.Equal(t, "after", got)
	})

	t.Run("FailoverForce", func(t *testing.T) {
		const key = "force-key"
		require.NoError(t, cc.Set(ctx, key, "before", 0).Err())
		old := c.MasterForKey(t, key)
		replica := c.ReplicaOf(t, old)
		c.Kill(t, old)

		start := time.Now()
		c.Failover(t, replica) // CLUSTER FAILOVER FORCE, as old is down
		t.Logf("Failover after Kill: %v", time.Since(start))

		assert.Equal(t, replica, c.MasterForKey(t, key))
		// A dead master sends no MOVED: without this, go-redis dials it
		// until its periodic reload of the slot map (every 60 s by default).
		cc.ReloadState(ctx)
		eventually(t, 10*time.Second, func() error { return cc.Set(ctx, key, "after", 0).Err() })
		got, err := direct(t, replica).Get(ctx, key).Result()
		require.NoError(t, err)
		assert.Equal(t, "after", got)
	})

	t.Run("Kill", func(t *testing.T) {
		// A master that still has a replica: not the one FailoverForce promoted.
		var master string
		for i := 0; master == ""; i++ {
			if m := c.MasterForKey(t, fmt.Sprintf("kill%d", i)); m != c.MasterForKey(t, "force-key") {
				master = m
			}
		}
		replica := c.ReplicaOf(t, master)
		cl := direct(t, replica)
		require.NoError(t, cl.Ping(ctx).Err())
		c.Kill(t, replica)
		c.Kill(t, replica) // already killed: does nothing
		assert.Error(t, cl.Ping(ctx).Err(), "a killed node must not answer")
	})
}

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := clustertest.StartSentinel(t, 2, 3)
	t.Logf("StartSentinel(2, 3): %v", time.Since(start))
	ctx := t.Context()
	require.Len(t, s.SentinelAddrs(), 3)

	old := s.MasterAddr(t)
	assert.Equal(t, "master", replication(t, s.Direct(t, old))["role"])
	fc := s.FailoverClient(t)
	require.NoError(t, fc.Set(ctx, "k", "before", 0).Err())
	got, err := s.Direct(t, old).Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "before", got, "the failover client must write to the master")

	start = time.Now()
	s.Failover(t)
	t.Logf("Failover: %v", time.Since(start))

	master := s.MasterAddr(t)
	assert.NotEqual(t, old, master)
	assert.Equal(t, "master", replication(t, s.Direct(t, master))["role"])
	repl := replication(t, s.Direct(t, old))
	assert.Equal(t, "slave", repl["role"], "the old master must be demoted")
	assert.Equal(t, master, repl["master_host"]+":"+repl["master_port"])
	eventually(t, 10*time.Second, func() error { return fc.Set(ctx, "k", "after", 0).Err() })
	got, err = s.Direct(t, master).Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "after", got, "the failover client must write to the new master")
}

func TestSentinelKillMaster(t *testing.T) {
	t.Parallel()
	s := clustertest.StartSentinel(t, 2, 3)
	ctx := t.Context()
	fc := s.FailoverClient(t)
	require.NoError(t, fc.Set(ctx, "k", "before", 0).Err())

	start := time.Now()
	old := s.KillMaster(t)
	assert.Error(t, s.Direct(t, old).Ping(ctx).Err(), "a killed master must not answer")
	master := s.WaitNewMaster(t, old)
	t.Logf("KillMaster + WaitNewMaster: %v", time.Since(start))

	assert.NotEqual(t, old, master)
	assert.Equal(t, master, s.MasterAddr(t))
	assert.Equal(t, "master", replication(t, s.Direct(t, master))["role"])
	eventually(t, 10*time.Second, func() error { return fc.Set(ctx, "k", "after", 0).Err() })
	got, err := s.Direct(t, master).Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "after", got)
}

// TestMissingBinaries checks that StartCluster and StartSentinel go
// through redisproc.RequireBinaries, whose tests cover skipping and failing.
func TestMissingBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(redistest.EnvRequire, "1")
	for name, fn := range map[string]func(testing.TB){
		"StartCluster":  func(tb testing.TB) { clustertest.StartCluster(tb, 3, 0) },
		"StartSentinel": func(tb testing.TB) { clustertest.StartSentinel(tb, 0, 1) },
	} {
		f := faketb.Run(t, fn)
		assert.True(t, f.Failed, "%s must fail without redis-server when %s=1", name, redistest.EnvRequire)
		assert.Contains(t, f.Msg, redisproc.MustSelect(t).Server, name)
		assert.Contains(t, f.Msg, "not found in PATH", name)
	}
}
