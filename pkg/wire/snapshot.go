package wire

// PathSnapshot is the coordinator's backup route: GET streams the
// leader's state as a snapshot file (package snapshotfile; role operate),
// POST restores one through Raft (role admin) and answers
// SnapshotRestored.
const PathSnapshot = "/api/v1/snapshot"

// SnapshotRestored answers a restore: what the snapshot held.
type SnapshotRestored struct {
	// Index and Term are the Raft index and term the snapshot was taken
	// at (its header's).
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Datacenters and Hosts count the restored state.
	Datacenters int `json:"datacenters"`
	Hosts       int `json:"hosts"`
	// SlotsCarried are the reboot slots ("datacenter/host") held when
	// the restore began that the snapshot lacked: they stay held (a
	// restore fails closed).
	SlotsCarried []string `json:"slots_carried,omitempty"`
}
