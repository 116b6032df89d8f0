package clustertest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// MasterName is the name under which the sentinels of a [Sentinel] monitor
// the master.
const MasterName = "mymaster"

// Sentinel timings, in milliseconds, written to each sentinel.conf.
const (
	// downAfter is how long the master may not answer before a sentinel
	// deems it down: small, so that KillMaster leads to a failover within
	// seconds, but well above 1 s. Right after switching to a new master a
	// sentinel may take up to 1 s to reach it (it reconnects at most once a
	// second) and counts that time as unanswered: with 1000, the sentinels
	// sometimes deemed a master they had just promoted down and failed over
	// again.
	downAfter = 2000
	// failoverTimeout bounds the steps of a failover and spaces a retry
	// after a failed one at twice its value.
	failoverTimeout = 5000
)

// writeProbeKey is deleted on a master to check that it accepts writes: DEL
// is a write command, so a replica refuses it, and it leaves no data.
const writeProbeKey = "clustertest:write-probe"

// Sentinel is one master, its replicas and redis-sentinel processes
// monitoring it under [MasterName], all private processes on loopback,
// started by [StartSentinel]. Its methods may be called from any goroutine,
// but calls that change the topology should not overlap.
type Sentinel struct {
	nodes     []*node // the master at start, then the replicas; fixed
	sentinels []*sentinelProc
}

type sentinelProc struct {
	addr   string
	proc   *redisproc.Process
	client *redis.SentinelClient // the harness's own
}

// StartSentinel starts a master and the given numbers of replicas of it
// and of sentinels monitoring it under [MasterName], each process in its
// own directory from tb.TempDir. The quorum is a majority of the sentinels
// (2 of 3). It blocks until every replica's link is up and every sentinel
// sees the master, all replicas and all other sentinels (at most 30 s).
// tb.Cleanup kills every process and waits for it to exit.
//
// Without redis-server in PATH it skips the test, or fails it if
// $REDISLOCK_REQUIRE_REDIS is true.
func StartSentinel(tb testing.TB, replicas, sentinels int) *Sentinel {
	tb.Helper()
	if replicas < 0 || sentinels < 1 {
		tb.Fatalf("clustertest: StartSentinel(%d, %d): need replicas >= 0 and sentinels >= 1", replicas, sentinels)
	}
	progs := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, progs.Hint(), progs.Server)
	root := tb.TempDir()
	s := &Sentinel{}
	tb.Cleanup(s.stop) // registered after TempDir, so it runs before the removal

	master, err := startNode(filepath.Join(root, "master"), false)
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	s.nodes = append(s.nodes, master)
	host, port, _ := net.SplitHostPort(master.addr)
	for i := range replicas {
		r, err := startNode(filepath.Join(root, "replica"+strconv.Itoa(i)), false, "--replicaof", host, port)
		if err != nil {
			tb.Fatalf("clustertest: %v", err)
		}
		s.nodes = append(s.nodes, r)
	}
	// Sentinels learn of replicas from the master's INFO, which they read
	// at once on connecting and then only every 10 s: start them once the
	// master lists every replica.
	waitUntil(tb, settleTimeout, "replication", func() error {
		repl, err := master.info("replication")
		if err != nil {
			return err
		}
		if got := repl["connected_slaves"]; got != strconv.Itoa(replicas) {
			return fmt.Errorf("master %s has %s replicas connected, want %d", master.addr, got, replicas)
		}
		for _, r := range s.nodes[1:] {
			if err := r.replicaLinkUp(); err != nil {
				return err
			}
		}
		return nil
	})

	quorum := sentinels/2 + 1
	for i := range sentinels {
		sp, err := startSentinel(filepath.Join(root, "sentinel"+strconv.Itoa(i)), master.addr, quorum)
		if err != nil {
			tb.Fatalf("clustertest: %v", err)
		}
		s.sentinels = append(s.sentinels, sp)
	}
	waitUntil(tb, settleTimeout, "sentinel discovery", func() error {
		for _, sp := range s.sentinels {
			if err := sp.sees(master.addr, replicas, sentinels-1); err != nil {
				return err
			}
		}
		return nil
	})
	return s
}

// startSentinel starts a sentinel in dir monitoring the master at
// masterAddr, and blocks until it answers.
func startSentinel(dir, masterAddr string, quorum int) (*sentinelProc, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(masterAddr)
	conf := filepath.Join(dir, "sentinel.conf") // the sentinel rewrites it with what it learns
	p, err := startFreePort(dir, false, func(listen int) (string, []string, error) {
		text := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
daemonize no
dir %q
logfile %q
sentinel resolve-hostnames no
sentinel announce-hostnames no
sentinel monitor %s %s %s %d
sentinel down-after-milliseconds %[4]s %[8]d
sentinel failover-timeout %[4]s %[9]d
sentinel parallel-syncs %[4]s 1
`, listen, dir, filepath.Join(dir, redisproc.LogFile), MasterName, host, port, quorum, downAfter, failoverTimeout)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return "", nil, err
		}
		return sentinelCommand(conf)
	})
	if err != nil {
		return nil, err
	}
	return &sentinelProc{
		addr:   p.Addr(),
		proc:   p,
		client: redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: cmdTimeout, DisableIdentity: true}),
	}, nil
}

// sees returns nil if the sentinel monitors masterAddr as a master that is
// up, with the given numbers of replicas, all with their link up, and of
// other sentinels.
func (sp *sentinelProc) sees(masterAddr string, replicas, others int) error {
	ctx, cancel := cmdCtx()
	defer cancel()
	m, err := sp.client.Master(ctx, MasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL MASTER on %s: %w", sp.addr, err)
	}
	if addr := net.JoinHostPort(m["ip"], m["port"]); addr != masterAddr || m["flags"] != "master" {
		return fmt.Errorf("sentinel %s: master %s has flags %s, want %s with flags master", sp.addr, addr, m["flags"], masterAddr)
	}
	if m["num-slaves"] != strconv.Itoa(replicas) || m["num-other-sentinels"] != strconv.Itoa(others) {
		return fmt.Errorf("sentinel %s sees %s replicas and %s other sentinels, want %d and %d",
			sp.addr, m["num-slaves"], m["num-other-sentinels"], replicas, others)
	}
	rs, err := sp.client.Replicas(ctx, MasterName).Result()
	if err != nil {
		return fmt.Errorf("SENTINEL REPLICAS on %s: %w", sp.addr, err)
	}
	for _, r := range rs {
		if r["flags"] != "slave" || r["master-link-status"] != "ok" {
			return fmt.Errorf("sentinel %s: replica %s:%s has flags %s, master-link-status %s",
				sp.addr, r["ip"], r["port"], r["flags"], r["master-link-status"])
		}
	}
	return nil
}

func (s *Sentinel) stop() {
	for _, sp := range s.sentinels {
		sp.proc.Kill()
		_ = sp.client.Close()
	}
	stopAll(s.nodes)
}

// SentinelAddrs returns the "host:port" addresses of the sentinels.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sp := range s.sentinels {
		addrs[i] = sp.addr
	}
	return addrs
}

// MasterAddr returns the address of the master per SENTINEL
// GET-MASTER-ADDR-BY-NAME, asking the sentinels in turn until one answers.
func (s *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	addr, err := s.askMaster()
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	return addr
}

func (s *Sentinel) askMaster() (string, error) {
	var err error
	for _, sp := range s.sentinels {
		var addr string
		if addr, err = sp.masterAddr(); err == nil {
			return addr, nil
		}
	}
	return "", err
}

func (sp *sentinelProc) masterAddr() (string, error) {
	ctx, cancel := cmdCtx()
	defer cancel()
	hp, err := sp.client.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %w", sp.addr, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME on %s: got %q", sp.addr, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// FailoverClient returns redis.NewFailoverClient for [MasterName] and the
// sentinels, with opts applied to its options. tb.Cleanup closes it.
func (s *Sentinel) FailoverClient(tb testing.TB, opts ...func(*redis.FailoverOptions)) *redis.Client {
	tb.Helper()
	o := &redis.FailoverOptions{MasterName: MasterName, SentinelAddrs: s.SentinelAddrs()}
	for _, opt := range opts {
		opt(o)
	}
	c := redis.NewFailoverClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Direct returns a plain client of the master, replica or sentinel at addr.
// tb.Cleanup closes it.
func (s *Sentinel) Direct(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	if s.node(addr) == nil && !slices.Contains(s.SentinelAddrs(), addr) {
		tb.Fatalf("clustertest: %s is not a node of this setup", addr)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Failover runs SENTINEL FAILOVER on a sentinel and blocks until every
// sentinel has switched to the same new master and it accepts writes. Then
// it makes the old master a replica of the new one and blocks until every
// running node but the new master replicates it with its link up. Each of
// the two waits is bounded by 30 s.
//
// The sentinels would demote the old master themselves, but only after it
// has gone on reporting itself a master for a fixed 8 s
// (SENTINEL_PUBLISH_PERIOD*4 in Redis); Failover sends the same REPLICAOF
// at once instead. To observe the window in which the old master still
// takes writes, send SENTINEL FAILOVER through [Sentinel.Direct] and call
// [Sentinel.WaitNewMaster], which waits for the sentinels to demote it
// (about 10 s).
func (s *Sentinel) Failover(tb testing.TB) {
	tb.Helper()
	old := s.MasterAddr(tb)
	ctx, cancel := cmdCtx()
	defer cancel()
	if err := s.sentinels[0].client.Failover(ctx, MasterName).Err(); err != nil {
		tb.Fatalf("clustertest: SENTINEL FAILOVER on %s: %v", s.sentinels[0].addr, err)
	}
	var addr string
	waitUntil(tb, settleTimeout, "failover away from "+old, func() error {
		var err error
		addr, err = s.newMaster(old)
		return err
	})
	if n := s.node(old); n != nil && n.alive() {
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := cmdCtx()
		defer cancel()
		if err := n.admin.ReplicaOf(ctx, host, port).Err(); err != nil {
			tb.Fatalf("clustertest: REPLICAOF %s %s on old master %s: %v", host, port, old, err)
		}
	}
	s.WaitNewMaster(tb, old)
}

// KillMaster kills the master per [Sentinel.MasterAddr] with SIGKILL, waits
// for it to exit and returns its address. It does not wait for the
// sentinels to react: see [Sentinel.WaitNewMaster].
func (s *Sentinel) KillMaster(tb testing.TB) (oldAddr string) {
	tb.Helper()
	oldAddr = s.MasterAddr(tb)
	n := s.node(oldAddr)
	if n == nil {
		tb.Fatalf("clustertest: KillMaster: the sentinels name %s, which is not a node of this setup", oldAddr)
	}
	n.kill()
	return oldAddr
}

// WaitNewMaster blocks until every sentinel has switched to the same master
// other than old, with no failover in progress, it accepts writes and every other running node replicates it
// with its link up (at most 30 s), and returns its address.
func (s *Sentinel) WaitNewMaster(tb testing.TB, old string) string {
	tb.Helper()
	var addr string
	waitUntil(tb, settleTimeout, "new master other than "+old, func() error {
		var err error
		if addr, err = s.newMaster(old); err != nil {
			return err
		}
		return s.replicating(addr)
	})
	return addr
}

// newMaster returns the master's address if every sentinel monitors it, as
// a master that is up and not in a failover, and it is not old, and it
// accepts writes. GET-MASTER-ADDR-BY-NAME does not tell this much: it names
// the promoted replica while the failover that promotes it is still running.
func (s *Sentinel) newMaster(old string) (string, error) {
	var addr string
	for i, sp := range s.sentinels {
		ctx, cancel := cmdCtx()
		m, err := sp.client.Master(ctx, MasterName).Result()
		cancel()
		if err != nil {
			return "", fmt.Errorf("SENTINEL MASTER on %s: %w", sp.addr, err)
		}
		a := net.JoinHostPort(m["ip"], m["port"])
		if m["flags"] != "master" {
			return "", fmt.Errorf("sentinel %s: master %s has flags %s", sp.addr, a, m["flags"])
		}
		if i > 0 && a != addr {
			return "", fmt.Errorf("sentinels %s and %s monitor masters %s and %s", s.sentinels[0].addr, sp.addr, addr, a)
		}
		addr = a
	}
	if addr == old {
		return "", fmt.Errorf("the sentinels still monitor %s", old)
	}
	m := s.node(addr)
	if m == nil || !m.alive() {
		return "", fmt.Errorf("the sentinels monitor %s, which is not a running node", addr)
	}
	ctx, cancel := cmdCtx()
	defer cancel()
	if err := m.admin.Del(ctx, writeProbeKey).Err(); err != nil {
		return "", fmt.Errorf("new master %s refuses writes: %w", addr, err)
	}
	return addr, nil
}

// replicating returns nil if every running node but the one at master is
// its replica with the link up.
func (s *Sentinel) replicating(master string) error {
	host, port, _ := net.SplitHostPort(master)
	for _, n := range s.nodes {
		if n.addr == master || !n.alive() {
			continue
		}
		repl, err := n.info("replication")
		if err != nil {
			return err
		}
		if repl["role"] != "slave" || repl["master_host"] != host || repl["master_port"] != port || repl["master_link_status"] != "up" {
			return fmt.Errorf("%s is not a replica of %s with its link up (role:%s master:%s:%s link:%s)",
				n.addr, master, repl["role"], repl["master_host"], repl["master_port"], repl["master_link_status"])
		}
	}
	return nil
}

// node returns the master or replica at addr, or nil.
func (s *Sentinel) node(addr string) *node {
	for _, n := range s.nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}
