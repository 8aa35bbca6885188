package gossip

// Member is one pool member as this node sees it.
type Member struct {
	// Name is the member's node name (its host id).
	Name string
	// Addr is the member's host:port.
	Addr string
	// State is StateAlive, StateDead or StateLeft (StateSuspect is never
	// reported: memberlist v0.7.0 does not expose suspicion, so a member
	// under suspicion is alive until declared dead, within about
	// SuspicionMult·log10(N)·ProbeInterval).
	State string
	// Meta is the member's last announced metadata.
	Meta Meta
}

// View is this node's view of its datacenter's pool.
type View struct {
	// Alive, Suspect, Dead and Left count the members by state; Suspect
	// is always 0 (see Member.State).
	Alive, Suspect, Dead, Left int
	// ByPhase counts the alive members by Meta.Phase.
	ByPhase map[string]int
	// Members lists the members, this node included, sorted by name.
	Members []Member
}
