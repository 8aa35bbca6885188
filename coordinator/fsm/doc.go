// Package fsm is the coordinator's replicated state machine: datacenters,
// hosts, reboot slots with fencing tokens, cluster members and a bounded
// event history.
//
// Every change is a typed Command (a type tag, a format version and a JSON
// payload) that the Raft leader stamps with its clock before it is
// replicated; Apply never reads the local clock, so every replica computes
// the same state. Lease expiry is itself a replicated command (Tick). Each
// command has one payload type and one entry in the registry
// (registry.go), through which both the Raft log (Apply) and the fleet
// simulator (Exec) dispatch. Snapshots stream the state as JSON with its
// format version; Restore replaces it. A command or snapshot of a type or
// format version this code does not know halts the FSM (FSM.Halted)
// rather than being skipped. testdata/format-v* hold a log and snapshots
// of every format, which today's code must replay into the same state.
package fsm
