// Package fsm is the coordinator's replicated state machine: datacenters,
// hosts, reboot slots with fencing tokens, cluster members and a bounded
// event history.
//
// Every change is a typed Command (a type tag and a JSON payload) that the
// Raft leader stamps with its clock before it is replicated; Apply never
// reads the local clock, so every replica computes the same state. Lease
// expiry is itself a replicated command (Tick). Snapshots stream the state
// as JSON; Restore replaces it.
package fsm
