package clustertest

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id       string
	addr     string // "ip:port", without the bus port and hostname
	flags    []string
	masterID string   // the master of a replica; empty for a master
	slots    []string // as listed: "0-5460", "7000", "[93->-<id>]" (migrating)
}

func (n clusterNode) has(flag string) bool { return slices.Contains(n.flags, flag) }
func (n clusterNode) master() bool         { return n.has("master") }

// topology is one node's view of the cluster: CLUSTER NODES, by node ID.
type topology map[string]clusterNode

// parseClusterNodes parses a CLUSTER NODES reply.
func parseClusterNodes(s string) (topology, error) {
	t := topology{}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q: too few fields", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := clusterNode{id: f[0], addr: addr, flags: strings.Split(f[2], ","), slots: f[8:]}
		if f[3] != "-" {
			n.masterID = f[3]
		}
		t[n.id] = n
	}
	return t, nil
}

// owner returns the ID of the master that serves slot, or "" if none does.
func (t topology) owner(slot int) string {
	for id, n := range t {
		for _, r := range n.slots {
			if strings.HasPrefix(r, "[") {
				continue // an import or migration in progress, not ownership
			}
			lo, hi, isRange := strings.Cut(r, "-")
			if !isRange {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && l <= slot && slot <= h {
				return id
			}
		}
	}
	return ""
}

// replicasOf returns the IDs of the replicas of masterID, sorted by address.
func (t topology) replicasOf(masterID string) []string {
	var ids []string
	for id, n := range t {
		if !n.master() && n.masterID == masterID {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int { return strings.Compare(t[a].addr, t[b].addr) })
	return ids
}

// summary describes the nodes in ids, in a form that is equal for two views
// exactly when they agree on those nodes' roles, masters and slots. It
// reports an error if the view flags one of them as failing or unknown.
func (t topology) summary(ids []string) (string, error) {
	var sb strings.Builder
	for _, id := range ids {
		n, ok := t[id]
		if !ok {
			return "", fmt.Errorf("node %s is missing", id)
		}
		for _, bad := range []string{"fail", "fail?", "handshake", "noaddr"} {
			if n.has(bad) {
				return "", fmt.Errorf("node %s (%s) has flag %s", id, n.addr, bad)
			}
		}
		role := "replica of " + n.masterID
		if n.master() {
			role = "master"
		}
		fmt.Fprintf(&sb, "%s %s %s %s\n", id, n.addr, role, strings.Join(n.slots, " "))
	}
	return sb.String(), nil
}
