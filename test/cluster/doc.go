// Package cluster holds kroll's cluster-tier tests (DESIGN §8, tier 2):
// real three-node kroll-coordinator quorums run as OS processes on
// loopback, with their Raft state on disk, under SIGKILLed leaders and full
// restarts.
//
// The tests build kroll-coordinator once per test binary (or use the binary
// named by $KROLL_COORDINATOR_BIN) and check from the outside what DESIGN
// §5 promises: no acknowledged grant is lost, no datacenter ever has more
// holders than its slot limit, fencing tokens strictly increase per
// datacenter, the state survives a restart of every node from disk, and
// recorded client histories are linearizable (checked with porcupine
// against a model of a per-datacenter counting semaphore with owned,
// recursive holds). TestFleetLockOverProcesses speaks the FleetLock
// protocol with plain net/http to a follower.
//
// BenchmarkSlotThroughput measures slot acquire+release pairs per second
// on a kroll cluster and, side by side, on a three-member etcd cluster
// running the compare-and-swap semaphore that etcd-based reboot managers
// use. BenchmarkRegionHeartbeats loads a quorum with 10,000–200,000
// heartbeating agents and one slot agent (issue 13); it runs the binary in
// $KROLL_BENCH_COORDINATOR when set, which scripts/bench-region.sh uses to
// compare a baseline with the current tree. docs/benchmarks.md has the
// figures.
//
// The package has no non-test code besides this comment.
package cluster
