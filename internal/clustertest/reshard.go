package clustertest

import (
	"fmt"
	"net"
	"testing"
)

const (
	slotCount      = 16384 // hash slots of a Redis Cluster
	migrateTimeout = 5000  // MIGRATE's own timeout, in milliseconds
	migrateBatch   = 100   // keys per MIGRATE
)

// MoveSlot migrates slot, with its keys, from the master that serves it to
// the master at dstAddr, by the protocol redis-cli uses: CLUSTER SETSLOT
// IMPORTING on the destination and MIGRATING on the source, MIGRATE of the
// keys in batches, then CLUSTER SETSLOT NODE on the destination, the source
// and every other running master. It blocks until all running nodes agree
// that dstAddr serves slot (at most 30 s). Moving a slot to the master that
// serves it does nothing.
func (c *Cluster) MoveSlot(tb testing.TB, slot int, dstAddr string) {
	tb.Helper()
	c.BeginMoveSlot(tb, slot, dstAddr)()
}

// BeginMoveSlot does the first half of [Cluster.MoveSlot]: it marks slot
// importing on the master at dstAddr and migrating on its source, and
// migrates the given keys of the slot, or all its keys if none are given,
// but leaves the slot assigned to the source. Until finish is called, the
// source serves the keys it still has, answers requests for the others with
// ASK redirections to dstAddr (TRYAGAIN for a request on keys of both
// kinds), and dstAddr serves the moved keys only after ASKING. finish
// migrates the keys left and assigns the slot to dstAddr as MoveSlot does,
// blocking until all running nodes agree; it must be called once, from the
// test's goroutine. If the slot is already served by dstAddr, finish does
// nothing.
func (c *Cluster) BeginMoveSlot(tb testing.TB, slot int, dstAddr string, keys ...string) (finish func()) {
	tb.Helper()
	if slot < 0 || slot >= slotCount {
		tb.Fatalf("clustertest: MoveSlot: slot %d is not in [0, %d)", slot, slotCount)
	}
	dst := c.node(tb, dstAddr)
	if !dst.alive() {
		tb.Fatalf("clustertest: MoveSlot: %s was killed", dstAddr)
	}
	t, err := view(dst)
	if err != nil {
		tb.Fatalf("clustertest: %v", err)
	}
	if !t[dst.id].master() {
		tb.Fatalf("clustertest: MoveSlot: %s is not a master", dstAddr)
	}
	src := c.byID(t.owner(slot))
	switch {
	case src == nil:
		tb.Fatalf("clustertest: MoveSlot: no master serves slot %d per %s", slot, dstAddr)
	case src == dst:
		return func() {}
	case !src.alive():
		tb.Fatalf("clustertest: MoveSlot: slot %d is served by %s, which was killed", slot, src.addr)
	}

	do := func(n *node, args ...any) []any {
		tb.Helper()
		ctx, cancel := cmdCtx()
		defer cancel()
		v, err := n.admin.Do(ctx, args...).Result()
		if err != nil {
			tb.Fatalf("clustertest: MoveSlot: %v on %s: %v", args, n.addr, err)
		}
		vs, _ := v.([]any)
		return vs
	}
	// The destination first, so that it already accepts the ASK redirections
	// the source sends once it is migrating.
	do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
	do(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id)
	host, port, _ := net.SplitHostPort(dst.addr)
	migrate := func(keys []any) {
		tb.Helper()
		args := append([]any{"MIGRATE", host, port, "", 0, migrateTimeout, "KEYS"}, keys...)
		do(src, args...)
	}
	migrateAll := func() {
		tb.Helper()
		for {
			keys := do(src, "CLUSTER", "GETKEYSINSLOT", slot, migrateBatch)
			if len(keys) == 0 {
				break
			}
			migrate(keys)
		}
	}
	if len(keys) == 0 {
		migrateAll()
	}
	for lo := 0; lo < len(keys); lo += migrateBatch {
		var batch []any
		for _, k := range keys[lo:min(lo+migrateBatch, len(keys))] {
			batch = append(batch, k)
		}
		migrate(batch)
	}
	return func() {
		tb.Helper()
		migrateAll()
		// The destination first again: once the source gives up the slot
		// it redirects clients there, which must then serve it.
		do(dst, "CLUSTER", "SETSLOT", slot, "NODE", dst.id)
		do(src, "CLUSTER", "SETSLOT", slot, "NODE", dst.id)
		for id, cn := range t {
			if n := c.byID(id); cn.master() && n != nil && n != src && n != dst && n.alive() {
				do(n, "CLUSTER", "SETSLOT", slot, "NODE", dst.id)
			}
		}
		c.waitAgreed(tb, fmt.Sprintf("moving slot %d to %s", slot, dstAddr), func(t topology) error {
			if owner := t.owner(slot); owner != dst.id {
				return fmt.Errorf("slot %d is served by %s", slot, t[owner].addr)
			}
			return nil
		})
	}
}
