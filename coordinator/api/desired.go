package api

import (
	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// desiredState builds a heartbeat's answer from the command's result. The
// release manifest and the policy documents are omitted (Unchanged) when
// the agent already holds them: its desired_version (have) equals the version of
// what it would be sent. The slot, the limits, the retirements and the
// gossip seeds and the host's kernel line are always sent.
func (s *Server) desiredState(have string, res fsm.Result) wire.DesiredState {
	ds := wire.DesiredState{
		HeartbeatIntervalSeconds: int(s.cfg.HeartbeatInterval.Seconds()),
		KernelLine:               res.KernelLine,
		Slot:                     res.Slot,
		Release:                  res.Release,
		Policies:                 res.Policies,
		RetiredPolicies:          res.RetiredPolicies,
		Retirements:              res.Retirements,
		Datacenter:               res.Limits,
		GossipSeeds:              res.GossipSeeds,
		DesiredVersion:           wire.DesiredVersion(res.Release, res.Policies),
	}
	if have != "" && have == ds.DesiredVersion {
		ds.Release, ds.Policies, ds.Unchanged = nil, nil, true
	}
	return ds
}
