package wire

// PathCVE + {id} (a CVE id): GET → CVEReport, the fleet's exposure to one
// CVE and the playbook per kernel line (krollctl cve show).
const PathCVE = "/api/v1/cves/"

// CVECounts classifies hosts by their exposure to one CVE. Every host is
// counted in exactly one of the four.
type CVECounts struct {
	// Patched hosts run a kernel that contains the fix.
	Patched int `json:"patched"`
	// Mitigated hosts are not patched and report a policy for the CVE
	// enforcing.
	Mitigated int `json:"mitigated"`
	// Auditing hosts are not patched and report a policy for the CVE
	// only auditing (nothing enforcing).
	Auditing int `json:"auditing"`
	// Exposed hosts are neither patched nor covered by a policy (hosts
	// whose kernel is not reported count here).
	Exposed int `json:"exposed"`
}

// Hosts returns the number of hosts counted.
func (c CVECounts) Hosts() int { return c.Patched + c.Mitigated + c.Auditing + c.Exposed }

// CVEReport is the fleet's exposure to one CVE: in total, per kernel line
// with the playbook's advice, and per datacenter.
type CVEReport struct {
	// CVE is the CVE id asked about.
	CVE string `json:"cve"`
	CVECounts
	// Lines are the kernel lines hosts run, in version order.
	Lines []CVELine `json:"lines"`
	// Datacenters are the datacenters with hosts, by name.
	Datacenters []CVEDatacenter `json:"datacenters"`
}

// CVELine is one kernel line's exposure and the playbook's advice.
type CVELine struct {
	// Line is the kernel line, "6.12" ("unknown" for hosts that reported
	// no kernel).
	Line string `json:"line"`
	// FixRelease is the release of the line that contains the fix and is
	// furthest along the train (rolling, validated, done, staging,
	// candidate), "" when the line has none.
	FixRelease string `json:"fix_release"`
	// FixState is FixRelease's release state, "" when there is none.
	FixState string `json:"fix_state,omitempty"`
	// Advice is what to do: "expedite the train (release X validated)",
	// "rolling: N of M hosts patched", "no fix on line X: keep the
	// mitigation (N hosts)", ...
	Advice string `json:"advice"`
	CVECounts
}

// CVEDatacenter is one datacenter's exposure.
type CVEDatacenter struct {
	// Datacenter is the datacenter's name.
	Datacenter string `json:"datacenter"`
	CVECounts
}
