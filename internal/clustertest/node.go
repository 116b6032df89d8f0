package clustertest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// node is one redis-server process of a Cluster or a Sentinel setup.
type node struct {
	addr  string
	id    string        // cluster node ID; empty outside a cluster
	admin *redis.Client // the harness's own client; closed by stop

	mu   sync.Mutex
	proc *redisproc.Process // nil once killed
}

// startNode starts a redis-server in its own directory dir, with the given
// arguments after the common ones of [redisproc.ServerArgs]. bus makes it
// pick a port whose cluster bus port is free too. It blocks until the
// server answers.
func startNode(dir string, bus bool, extra ...string) (*node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p, err := startFreePort(dir, bus, func(port int) (string, []string, error) {
		args := append(redisproc.ServerArgs(dir, port),
			// A replica's first sync would otherwise wait 5 s for more
			// replicas to share the transfer.
			"--repl-diskless-sync-delay", "0")
		progs, err := redisproc.Selected()
		return progs.Server, append(args, extra...), err
	})
	if err != nil {
		return nil, err
	}
	return &node{addr: p.Addr(), admin: adminClient(p.Addr()), proc: p}, nil
}

// adminClient returns a client for the harness's own commands: no retries,
// so that errors reach the polling loops at once.
func adminClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            addr,
		MaxRetries:      -1,
		DialTimeout:     time.Second,
		ReadTimeout:     cmdTimeout,
		WriteTimeout:    cmdTimeout,
		PoolSize:        2,
		DisableIdentity: true,
	})
}

func (n *node) alive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// kill kills the process with SIGKILL and waits for it to exit. It may be
// called again.
func (n *node) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.proc.Kill()
		n.proc = nil
	}
}

// stop kills the process and closes the admin client.
func (n *node) stop() {
	n.kill()
	_ = n.admin.Close()
}

// info returns the fields of one INFO section.
func (n *node) info(section string) (map[string]string, error) {
	ctx, cancel := cmdCtx()
	defer cancel()
	s, err := n.admin.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("INFO %s on %s: %w", section, n.addr, err)
	}
	return parseInfo(s), nil
}

// parseInfo returns the "key:value" lines of an INFO reply.
func parseInfo(s string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// replicaLinkUp returns nil if the node is a replica whose link to its
// master is up.
func (n *node) replicaLinkUp() error {
	repl, err := n.info("replication")
	if err != nil {
		return err
	}
	if repl["role"] != "slave" {
		return fmt.Errorf("%s has role %q, want slave", n.addr, repl["role"])
	}
	if repl["master_link_status"] != "up" {
		return fmt.Errorf("%s: master_link_status:%s", n.addr, repl["master_link_status"])
	}
	return nil
}

// stopAll stops every node in ns.
func stopAll(ns []*node) {
	for _, n := range ns {
		n.stop()
	}
}
