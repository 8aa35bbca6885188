// Package sim is a discrete-event fleet simulator for kroll's coordinator.
//
// It drives the real replicated state machine (coordinator/fsm, and through
// it the slot scheduler coordinator/schedule and the rollout planner) with
// simulated agents and a simulated clock: nothing of the scheduling logic
// is re-implemented here. Simulated agents follow the agent lifecycle of
// DESIGN §4 — they learn their target release from heartbeat answers,
// stage it before they ask for a slot, then acquire, drain, reboot (kexec
// or cold), verify, report health and release the slot — and send a
// heartbeat at each phase change so that the coordinator's view of phases
// and kernels is current.
//
// The simulation is event-driven: an agent that is denied a slot waits for
// a wake of its datacenter (a slot released, the window opening, an
// operator resuming it) instead of polling every simulated minute, and the
// state machine is ticked exactly when a rollout may move on (a wave's last
// host finished, a soak or pacing delay ends, a reboot deadline passes).
// Runs are deterministic: the same fleet, options and seed give the same
// Result.
//
// At every event the simulator checks two invariants independently of the
// state machine: a datacenter never has more slot holders than its
// effective slot limit, and after every grant at least the capacity floor
// of its hosts are serving. Result reports the violations (which must be
// zero), the makespan, a lower bound computed from the same constraints
// and their ratio.
//
// RunTrain simulates the release train over weeks instead of one rollout:
// builds arrive through the feed (fsm RecordFeedBuild), the state machine
// is ticked and the train's steps (coordinator/train.Decide) applied as
// the leader applies them, and simulated agents take whatever their
// heartbeat answers name. TrainResult reports each build's way through the
// train, the hosts' days behind the newest validated build per tier, and
// the exposure to a CVE with and without a mitigation.
//
// Both simulators embed one event engine (engine.go): the simulated clock,
// the event queue, the random source, the state machine and the slot
// bookkeeping of a datacenter (waiting line, wakes, denials, operator
// calls); each keeps only its hosts, its events' handling and its results.
package sim
