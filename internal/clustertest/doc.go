// Package clustertest runs a Redis Cluster or a Sentinel-managed
// master/replica group of private processes on loopback, for tests that need
// failover, resharding or node loss.
//
// [StartCluster] starts a [Cluster] of redis-server nodes; [StartSentinel]
// starts a [Sentinel] setup: one master, its replicas and redis-sentinel
// processes. Both block until the topology is healthy, and every method that
// changes the topology ([Cluster.Failover], [Cluster.MoveSlot],
// [Sentinel.Failover], [Sentinel.WaitNewMaster]) blocks, for a bounded time,
// until all nodes agree on the result, so a test can assert on it at once.
// A method that cannot do its job fails the test with tb.Fatal.
//
// tb.Cleanup kills every process (SIGKILL, then waits for it to exit) and
// closes every client the package handed out or used itself. No process is
// left behind, and no goroutine of this package outlives the test.
//
// The processes listen on 127.0.0.1 only, on ports picked at random from
// 10000–22699 that are free when picked; a cluster node's bus port (port
// +10000) is checked too. If another process takes a port first, the
// process is started again on a fresh one.
//
// The programs are Redis's, or Valkey's if $REDISLOCK_SERVER is "valkey"
// (see redisproc.Selected). Without redis-server (and, for a cluster,
// redis-cli) in PATH, the test is skipped, or fails if
// $REDISLOCK_REQUIRE_REDIS is true, as in package redistest. Sentinels run
// as redis-sentinel if it is in PATH and as "redis-server --sentinel"
// otherwise.
package clustertest
