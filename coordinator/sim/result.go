package sim

import (
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// Result is what a run measured. The JSON field names are stable (docs
// and scripts read them).
type Result struct {
	Hosts       int     `json:"hosts"`
	Datacenters int     `json:"datacenters"`
	Seed        uint64  `json:"seed"`
	Expedite    bool    `json:"expedite"`
	Reboot      string  `json:"reboot"`
	FailPct     float64 `json:"fail_pct"`
	LostPct     float64 `json:"lost_pct"`
	// MakespanHours is the time from the rollout's start until the last
	// host finished (on the new kernel, or failed and rolled back).
	MakespanHours float64 `json:"makespan_hours"`
	// LowerBoundHours is no schedule's makespan can beat under the same
	// constraints (see LowerBound).
	LowerBoundHours float64 `json:"lower_bound_hours"`
	// Efficiency is LowerBoundHours / MakespanHours (1 = optimal).
	Efficiency float64 `json:"efficiency"`
	// MaxDCOutFraction is the largest fraction of any datacenter's hosts
	// out of service (holding a slot, failed or lost) at any time.
	MaxDCOutFraction float64 `json:"max_dc_out_fraction"`
	// CapacityFloorViolations counts grants after which a datacenter had
	// fewer serving hosts than its floor (must be 0).
	CapacityFloorViolations int `json:"capacity_floor_violations"`
	// SlotLimitViolations counts events after which a datacenter had more
	// holders than its slot limit (must be 0).
	SlotLimitViolations int `json:"slot_limit_violations"`
	// Completed reports that every host finished and the rollout is done.
	Completed    bool   `json:"completed"`
	RolloutState string `json:"rollout_state"`
	PauseReason  string `json:"pause_reason,omitempty"`
	// RolloutBudget is the per-wave failure budget the rollout ran with.
	RolloutBudget int            `json:"rollout_budget"`
	HostsUpdated  int            `json:"hosts_updated"`
	HostsFailed   int            `json:"hosts_failed"`
	HostsLost     int            `json:"hosts_lost"`
	Grants        int            `json:"grants"`
	Denials       map[string]int `json:"denials"`
	// OperatorActions counts the simulated operator's slot releases and
	// datacenter resumes; DatacenterResumes the resumes alone.
	OperatorActions       int          `json:"operator_actions"`
	DatacenterResumes     int          `json:"datacenter_resumes"`
	DatacentersLeftPaused []string     `json:"datacenters_left_paused,omitempty"`
	Waves                 []WaveResult `json:"waves"`
	// Events is how many simulation events ran; Commands how many state
	// machine commands they applied.
	Events   int    `json:"events"`
	Commands uint64 `json:"fsm_commands"`
	// Series are the plot's time series.
	Series Series `json:"-"`
}

// WaveResult is one rollout wave's timing (hours since the rollout
// started; -1 = never).
type WaveResult struct {
	Name        string  `json:"name"`
	Datacenters int     `json:"datacenters"`
	Hosts       int     `json:"hosts"`
	Started     float64 `json:"started_hours"`
	Completed   float64 `json:"completed_hours"`
	BoundStart  float64 `json:"bound_start_hours"`
	BoundDone   float64 `json:"bound_done_hours"`
}

// Series are sampled time series for the plot.
type Series struct {
	// Hours since the rollout's start of each sample.
	Hours []float64
	// Regions names the regions; OutOfService[r][i] is the fraction of
	// region r's hosts out of service at sample i.
	Regions      []string
	OutOfService [][]float64
	// NewKernel[i] is the number of hosts on the new kernel at sample i.
	NewKernel []int
	// Hosts is the fleet's host count.
	Hosts int
}

func (s *sim) sample() {
	sr := &s.res.Series
	if sr.Regions == nil {
		sr.Regions = s.regions
		sr.OutOfService = make([][]float64, len(s.regions))
		sr.Hosts = len(s.hosts)
	}
	out := make([]int, len(s.regions))
	tot := make([]int, len(s.regions))
	for i := range s.dcs {
		d := &s.dcs[i]
		out[d.region] += d.holders + d.down
		tot[d.region] += d.spec.Hosts
	}
	sr.Hours = append(sr.Hours, hours(s.now-s.rolloutStart))
	for r := range out {
		sr.OutOfService[r] = append(sr.OutOfService[r], float64(out[r])/float64(max(tot[r], 1)))
	}
	sr.NewKernel = append(sr.NewKernel, s.res.HostsUpdated)
}

func hours(d time.Duration) float64 { return d.Hours() }

func (s *sim) finish() {
	r := &s.res
	r.Hosts, r.Datacenters = len(s.hosts), len(s.dcs)
	r.Seed, r.Expedite, r.Reboot, r.FailPct, r.LostPct = s.opt.Seed, s.opt.Expedite, s.opt.Reboot, s.opt.FailPct, s.opt.LostPct
	s.f.View(func(st *fsm.State) {
		ro := st.Rollouts[s.rolloutID]
		r.RolloutState, r.PauseReason = ro.State, ro.PauseReason
	})
	r.Completed = s.finals == len(s.hosts) && r.RolloutState == fsm.RolloutDone
	r.MakespanHours = hours(s.lastFinal - s.rolloutStart)
	if !r.Completed {
		r.MakespanHours = hours(s.now - s.rolloutStart)
	}
	if s.samplePending || len(r.Series.Hours) == 0 || r.Series.Hours[len(r.Series.Hours)-1] < r.MakespanHours {
		s.now = max(s.now, s.lastFinal)
		s.sample()
	}
	b := s.lowerBound()
	r.LowerBoundHours = hours(b.total)
	if r.Completed && r.MakespanHours > 0 {
		r.Efficiency = r.LowerBoundHours / r.MakespanHours
	}
	for wi, w := range s.waves {
		wr := WaveResult{Name: w.Name, Datacenters: len(w.Datacenters), Hosts: w.hosts, Started: -1, Completed: -1,
			BoundStart: hours(b.waveStart[wi]), BoundDone: hours(b.waveDone[wi])}
		if !w.Started.IsZero() {
			wr.Started = hours(w.Started.Sub(s.start) - s.rolloutStart)
		}
		if !w.Completed.IsZero() {
			wr.Completed = hours(w.Completed.Sub(s.start) - s.rolloutStart)
		}
		r.Waves = append(r.Waves, wr)
	}
	r.Commands = s.f.Applied()
	if r.Denials == nil {
		r.Denials = map[string]int{}
	}
}
