package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// nodeTimeout is --cluster-node-timeout in milliseconds: how long a node may
// be unreachable before the others fail it over. Small, so that a killed
// master is replaced within seconds; not so small that a node slowed by a
// loaded test machine is taken for dead.
const nodeTimeout = 1000

// Cluster is a Redis Cluster of private redis-server processes on loopback,
// started by [StartCluster]. Its methods may be called from any goroutine,
// but calls that change the topology should not overlap.
type Cluster struct {
	nodes []*node // in start order; fixed once StartCluster returns
}

// StartCluster starts masters×(1+replicasPer) redis-server nodes with
// cluster mode on, persistence off and DEBUG enabled, each in its own
// directory from tb.TempDir, joins them with "redis-cli --cluster create",
// and blocks until every node reports cluster_state:ok, all nodes agree on
// the topology and every replica's link to its master is up (at most 30 s).
// masters must be at least 3, as redis-cli requires. tb.Cleanup kills every
// node and waits for it to exit.
//
// Without redis-server and redis-cli in PATH (valkey-server and valkey-cli
// if $REDISLOCK_SERVER is "valkey") it skips the test, or fails it if
// $REDISLOCK_REQUIRE_REDIS is true.
func StartCluster(tb testing.TB, masters, replicasPer int) *Cluster {
	tb.Helper()
	if masters < 3 || replicasPer < 0 {
		tb.Fatalf("clustertest: StartCluster(%d, %d): need masters >= 3 and replicasPer >= 0", masters, replicasPer)
	}
	progs := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, progs.Hint(), progs.Server, progs.CLI)
	root := tb.TempDir()
	c := &Cluster{}
	tb.Cleanup(func() { stopAll(c.nodes) }) // registered after TempDir, so it runs before the removal

	for i := range masters * (1 + replicasPer) {
		n, err := startNode(filepath.Join(root, "node"+strconv.Itoa(i)), true,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in the node's directory
			"--cluster-node-timeout", strconv.Itoa(nodeTimeout),
			// Let a replica take over however long it was cut off from its
			// master, so that automatic failover after Kill never stalls.
			"--cluster-replica-validity-factor", "0",
		)
		if err != nil {
			tb.Fatalf("clustertest: %v", err)
		}
		c.nodes = append(c.nodes, n)
		ctx, cancel := cmdCtx()
		n.id, err = n.admin.ClusterMyID(ctx).Result()
		cancel()
		if err != nil {
			tb.Fatalf("clustertest: CLUSTER MYID on %s: %v", n.addr, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPer), "--cluster-yes")
	if out, err := exec.CommandContext(ctx, progs.CLI, args...).CombinedOutput(); err != nil {
		tb.Fatalf("clustertest: %s %s: %v\n%s", progs.CLI, strings.Join(args, " "), err, out)
	}
	c.waitAgreed(tb, "cluster creation", func(t topology) error {
		var n int
		for id, cn := range t {
			if !cn.master() {
				continue
			}
			n++
			if got := len(t.replicasOf(id)); got != replicasPer {
				return fmt.Errorf("master %s has %d replicas, want %d", cn.addr, got, replicasPer)
			}
		}
		if n != masters {
			return fmt.Errorf("%d masters, want %d", n, masters)
		}
		return nil
	})
	return c
}

// Addrs returns the "host:port" addresses of all nodes, in start order,
// including killed ones.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.addr
	}
	return addrs
}

// Client returns a cluster client seeded with the addresses of the nodes
// that are running, with opts applied to its options. tb.Cleanup closes it.
//
// go-redis reloads its slot map on a MOVED reply and otherwise only every
// ClusterStateReloadInterval (default 60 s). A killed master sends no MOVED,
// so after [Cluster.Kill] and a failover the client keeps dialing the dead
// node until the test calls its ReloadState method or that interval passes.
func (c *Cluster) Client(tb testing.TB, opts ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	tb.Helper()
	o := &redis.ClusterOptions{}
	for _, n := range c.live() {
		o.Addrs = append(o.Addrs, n.addr)
	}
	for _, opt := range opts {
		opt(o)
	}
	cc := redis.NewClusterClient(o)
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterForKey returns the address of the master that serves key's slot, as
// the first running node reports it (CLUSTER KEYSLOT, CLUSTER SLOTS).
func (c *Cluster) MasterForKey(tb testing.TB, key string) string {
	tb.Helper()
	n := c.anyLive(tb)
	ctx, cancel := cmdCtx()
	defer cancel()
	slot, err := n.admin.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		tb.Fatalf("clustertest: CLUSTER KEYSLOT on %s: %v", n.addr, err)
	}
	slots, err := n.admin.ClusterSlots(ctx).Result()
	if err != nil {
		tb.Fatalf("clustertest: CLUSTER SLOTS on %s: %v", n.addr, err)
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			return s.Nodes[0].Addr // the master comes first
		}
	}
	tb.Fatalf("clustertest: %s says no master serves slot %d (key %q)", n.addr, slot, key)
	return ""
}

// ReplicaOf returns the address of a running replica of the master at
// masterAddr, as the master reports it (or, if the master was killed, the
// first running node). With several, it returns the lowest address.
func (c *Cluster) ReplicaOf(tb testing.TB, masterAddr string) string {
	tb.Helper()
	m := c.node(tb, masterAddr)
	asked := m
	if !m.alive() {
		asked = c.anyLive(tb)
	}
	t, err := view(asked)
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	if !t[m.id].master() {
		tb.Fatalf("clustertest: ReplicaOf: %s is not a master per %s", masterAddr, asked.addr)
	}
	for _, id := range t.replicasOf(m.id) {
		if r := c.byID(id); r != nil && r.alive() {
			return r.addr
		}
	}
	tb.Fatalf("clustertest: ReplicaOf: master %s has no running replica per %s", masterAddr, asked.addr)
	return ""
}

// Failover runs CLUSTER FAILOVER on the replica at replicaAddr (CLUSTER
// FAILOVER FORCE if its master was killed with [Cluster.Kill]) and blocks
// until it is a master, its old master, if running, is its replica, and
// all running nodes agree (at most 30 s).
func (c *Cluster) Failover(tb testing.TB, replicaAddr string) {
	tb.Helper()
	r := c.node(tb, replicaAddr)
	if !r.alive() {
		tb.Fatalf("clustertest: Failover: %s was killed", replicaAddr)
	}
	t, err := view(r)
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	if t[r.id].master() {
		tb.Fatalf("clustertest: Failover: %s is already a master", replicaAddr)
	}
	old := c.byID(t[r.id].masterID)
	args := []any{"CLUSTER", "FAILOVER"}
	if old == nil || !old.alive() {
		args = append(args, "FORCE") // without the master's consent
	}
	ctx, cancel := cmdCtx()
	defer cancel()
	if err := r.admin.Do(ctx, args...).Err(); err != nil {
		tb.Fatalf("clustertest: CLUSTER FAILOVER on %s: %v", replicaAddr, err)
	}
	c.waitAgreed(tb, "failover to "+replicaAddr, func(t topology) error {
		if !t[r.id].master() {
			return fmt.Errorf("%s is not a master yet", replicaAddr)
		}
		if old != nil && old.alive() && t[old.id].masterID != r.id {
			return fmt.Errorf("old master %s is not a replica of %s yet", old.addr, replicaAddr)
		}
		return nil
	})
}

// Kill kills the node at addr with SIGKILL and waits for it to exit. Kill
// on a killed node does nothing. It does not wait for the cluster to react.
func (c *Cluster) Kill(tb testing.TB, addr string) {
	tb.Helper()
	c.node(tb, addr).kill()
}

// node returns the node at addr, failing tb if there is none.
func (c *Cluster) node(tb testing.TB, addr string) *node {
	tb.Helper()
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	tb.Fatalf("clustertest: %s is not a node of this cluster (%v)", addr, c.Addrs())
	return nil
}

// byID returns the node with the cluster node ID id, or nil.
func (c *Cluster) byID(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (c *Cluster) live() []*node {
	var live []*node
	for _, n := range c.nodes {
		if n.alive() {
			live = append(live, n)
		}
	}
	return live
}

func (c *Cluster) anyLive(tb testing.TB) *node {
	tb.Helper()
	live := c.live()
	if len(live) == 0 {
		tb.Fatal("clustertest: every node was killed")
	}
	return live[0]
}

// view returns n's view of the cluster.
func view(n *node) (topology, error) {
	ctx, cancel := cmdCtx()
	defer cancel()
	s, err := n.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("CLUSTER NODES on %s: %w", n.addr, err)
	}
	return parseClusterNodes(s)
}

// agreed returns nil if every running node reports cluster_state:ok, all of
// them agree on the roles, masters and slots of the running nodes, every
// running replica of a running master has its link up, and check, given one
// node's view, returns nil.
func (c *Cluster) agreed(check func(topology) error) error {
	live := c.live()
	if len(live) == 0 {
		return errors.New("every node was killed")
	}
	ids := make([]string, len(live))
	for i, n := range live {
		ids[i] = n.id
	}
	slices.Sort(ids)
	var first topology
	var firstSummary string
	for _, n := range live {
		ctx, cancel := cmdCtx()
		s, err := n.admin.ClusterInfo(ctx).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("CLUSTER INFO on %s: %w", n.addr, err)
		}
		if state := parseInfo(s)["cluster_state"]; state != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", n.addr, state)
		}
		t, err := view(n)
		if err != nil {
			return err
		}
		summary, err := t.summary(ids)
		if err != nil {
			return fmt.Errorf("per %s: %w", n.addr, err)
		}
		if first == nil {
			first, firstSummary = t, summary
		} else if summary != firstSummary {
			return fmt.Errorf("%s and %s disagree:\n%s---\n%s", live[0].addr, n.addr, firstSummary, summary)
		}
		if me := t[n.id]; !me.master() {
			if m := c.byID(me.masterID); m != nil && m.alive() {
				if err := n.replicaLinkUp(); err != nil {
					return err
				}
			}
		}
	}
	if check == nil {
		return nil
	}
	return check(first)
}

// waitAgreed blocks until agreed(check) returns nil, failing tb after
// settleTimeout.
func (c *Cluster) waitAgreed(tb testing.TB, what string, check func(topology) error) {
	tb.Helper()
	waitUntil(tb, settleTimeout, what, func() error { return c.agreed(check) })
}
