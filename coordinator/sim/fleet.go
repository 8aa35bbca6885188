package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/capacity"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Fleet describes the simulated fleet: its datacenters and the duration
// distributions of the agents' phases.
type Fleet struct {
	// Line is the kernel line the hosts run and the release targets.
	Line string `json:"line"`
	// FromKernel is the kernel the hosts run at the start; ToKernel the
	// release's kernel.
	FromKernel string `json:"from_kernel"`
	ToKernel   string `json:"to_kernel"`
	// Datacenters are the fleet's datacenters.
	Datacenters []Datacenter `json:"datacenters"`
	// Durations are the per-host phase durations.
	Durations Durations `json:"durations"`
}

// Datacenter is one simulated datacenter and its reboot policy.
type Datacenter struct {
	Name  string `json:"name"`
	Hosts int    `json:"hosts"`
	// Tier is "edge" (default), "control" or "staging".
	Tier string `json:"tier,omitempty"`
	// Window is the maintenance window, e.g. "Mon-Sun 02:00-04:00
	// Europe/Berlin"; empty means always.
	Window string `json:"window,omitempty"`
	// Region groups datacenters in the plot; empty = the window zone's
	// first component (e.g. "Europe").
	Region string `json:"region,omitempty"`
	// SlotPct or SlotLimit (exactly one) is the slot limit.
	SlotPct   int `json:"slot_pct,omitempty"`
	SlotLimit int `json:"slot_limit,omitempty"`
	// MinHealthyPct is the capacity floor.
	MinHealthyPct int `json:"min_healthy_pct"`
	// FailureBudget is the number of unhealthy reports that pause the
	// datacenter (0 = unlimited).
	FailureBudget int `json:"failure_budget,omitempty"`
}

// Range is a uniform distribution of a duration in minutes.
type Range struct {
	MinMinutes float64 `json:"min_minutes"`
	MaxMinutes float64 `json:"max_minutes"`
}

// Mean returns the distribution's mean.
func (r Range) Mean() time.Duration { return minutes((r.MinMinutes + r.MaxMinutes) / 2) }

// Min returns the distribution's smallest value.
func (r Range) Min() time.Duration { return minutes(r.MinMinutes) }

func minutes(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

func (r Range) validate(name string) error {
	if r.MinMinutes < 0 || r.MaxMinutes < r.MinMinutes || math.IsNaN(r.MinMinutes) || math.IsNaN(r.MaxMinutes) || math.IsInf(r.MaxMinutes, 0) {
		return fmt.Errorf("durations.%s: want 0 ≤ min_minutes ≤ max_minutes, got %v..%v", name, r.MinMinutes, r.MaxMinutes)
	}
	return nil
}

// Durations are the distributions of the agents' phase durations.
type Durations struct {
	// Stage: download, verify and unpack, before the agent asks for a
	// slot.
	Stage Range `json:"stage"`
	// Drain: withdraw routes and wait for connections to finish.
	Drain Range `json:"drain"`
	// Kexec: from kexec until the new kernel's agent runs.
	Kexec Range `json:"kexec"`
	// Cold: a full firmware reboot (POST, memory training, boot loader).
	Cold Range `json:"cold"`
	// Verify: health checks on the new kernel.
	Verify Range `json:"verify"`
}

// DefaultDurations are the phase durations of the default fleet, from
// published figures: a kexec skips firmware and takes well under a minute
// to a minute and a half until services run; a cold reboot of a large
// server spends minutes in POST and memory training (3–10 min); draining
// anycast traffic takes a few minutes for long-lived connections.
func DefaultDurations() Durations {
	return Durations{
		Stage:  Range{2, 10},
		Drain:  Range{2, 5},
		Kexec:  Range{0.5, 1.5},
		Cold:   Range{3, 10},
		Verify: Range{0.5, 2},
	}
}

// defaultZones returns the IANA zones the default fleet's datacenters are
// spread over, round the world.
func defaultZones() []string {
	return []string{
		"America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York",
		"America/Mexico_City", "America/Bogota", "America/Sao_Paulo",
		"Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Moscow",
		"Africa/Lagos", "Africa/Johannesburg",
		"Asia/Dubai", "Asia/Kolkata", "Asia/Singapore", "Asia/Hong_Kong", "Asia/Tokyo",
		"Australia/Sydney", "Pacific/Auckland",
	}
}

// Default fleet policy. 5% of a datacenter reboots at once (at least one
// host): an edge datacenter is provisioned to lose more than that at peak,
// and the window is at local night when traffic is far below peak. The
// capacity floor of 90% leaves room for the 5% in reboot plus 5% down for
// other reasons (failed or lost hosts) before grants stop.
const (
	DefaultSlotPct       = 5
	DefaultMinHealthyPct = 90
	defaultStagingHosts  = 20
	// stagingSlotPct: staging datacenters reboot 10% (2 of 20) at once.
	// They validate builds rather than carry the edge's traffic, and one
	// slot would need 20 sequential reboots (~2 h) — the whole window —
	// before every rollout's soak can even begin.
	stagingSlotPct    = 10
	defaultStagingDCs = 2
	defaultControlDCs = 10
	// defaultSpread is the ratio of the largest to the smallest datacenter.
	defaultSpread = 100.0
)

// DefaultFleet returns the built-in fleet: dcs datacenters (2 staging
// datacenters of 20 hosts, 10 control-tier datacenters, the rest edge)
// with hosts hosts in total, sized log-uniformly so that the largest
// is about 100× the smallest, spread round-robin over 20 time zones, each
// with a 2-hour window at local night (02:00–04:00), 5% slots (10% in
// staging), a 90%
// capacity floor (lower in datacenters under 20 hosts, where 90% would
// leave no room for a single reboot) and a failure budget of max(5, 3% of
// its hosts): above the background failure rate of a large fleet
// (~1% of reboots, mostly hardware) in all but one datacenter in a few
// hundred, far below a bad kernel's.
func DefaultFleet(dcs, hosts int) (Fleet, error) {
	if dcs < defaultStagingDCs+2 {
		return Fleet{}, fmt.Errorf("sim: default fleet: want at least %d datacenters, got %d", defaultStagingDCs+2, dcs)
	}
	rest := dcs - defaultStagingDCs
	restHosts := hosts - defaultStagingDCs*defaultStagingHosts
	if restHosts < rest {
		return Fleet{}, fmt.Errorf("sim: default fleet: %d hosts are too few for %d datacenters", hosts, dcs)
	}
	// Log-uniform quantiles: size_i = s·spread^(i/(rest-1)), scaled so
	// that they sum to restHosts.
	raw := make([]float64, rest)
	sum := 0.0
	for i := range raw {
		raw[i] = math.Pow(defaultSpread, float64(i)/float64(max(rest-1, 1)))
		sum += raw[i]
	}
	sizes := make([]int, rest)
	total := 0
	for i, r := range raw {
		sizes[i] = max(1, int(math.Round(r*float64(restHosts)/sum)))
		total += sizes[i]
	}
	sizes[rest-1] += restHosts - total // rounding remainder to the largest
	// Interleave sizes so that every zone gets small and large ones:
	// datacenter i gets the size at a stride through the sorted list.
	order := make([]int, rest)
	const stride = 7 // coprime with typical counts; only a permutation matters
	for i := range order {
		order[i] = i
	}
	if rest%stride != 0 {
		for i := range order {
			order[i] = (i * stride) % rest
		}
	}
	zones := defaultZones()
	nControl := min(defaultControlDCs, rest/3)
	f := Fleet{Line: "6.12", FromKernel: "6.12.116-kroll1", ToKernel: "6.12.117-kroll1", Durations: DefaultDurations()}
	add := func(name, tier, zone string, n int) {
		slotPct := DefaultSlotPct
		if tier == fsm.TierStaging {
			slotPct = stagingSlotPct
		}
		f.Datacenters = append(f.Datacenters, Datacenter{
			Name: name, Hosts: n, Tier: tier,
			Window:        "Mon-Sun 02:00-04:00 " + zone,
			SlotPct:       slotPct,
			MinHealthyPct: admissibleFloor(n, slotPct, DefaultMinHealthyPct),
			FailureBudget: max(5, (3*n+99)/100),
		})
	}
	for i := range defaultStagingDCs {
		add(fmt.Sprintf("stg-%d", i+1), fsm.TierStaging, zones[(i*9)%len(zones)], defaultStagingHosts)
	}
	ctl, edge := 0, 0
	for i, o := range order {
		zone := zones[i%len(zones)]
		// Every k-th datacenter is control tier.
		if ctl < nControl && i%(rest/nControl) == rest/nControl/2 {
			ctl++
			add(fmt.Sprintf("ctl-%02d", ctl), fsm.TierControl, zone, sizes[o])
			continue
		}
		edge++
		add(fmt.Sprintf("edge-%03d", edge), fsm.TierEdge, zone, sizes[o])
	}
	return f, nil
}

// admissibleFloor returns pct, lowered for a datacenter too small for it:
// a floor must leave room for the slot limit, or no host of the
// datacenter could ever reboot (9 hosts at 90% keep all 9 serving).
func admissibleFloor(hosts, slotPct, pct int) int {
	return min(pct, capacity.AdmissiblePct(hosts, capacity.SlotLimit(hosts, 0, slotPct)))
}

// LoadFleet reads a fleet from a JSON file (the Fleet type); missing
// durations default to DefaultDurations.
func LoadFleet(path string) (Fleet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Fleet{}, fmt.Errorf("sim: read fleet: %w", err)
	}
	var f Fleet
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Fleet{}, fmt.Errorf("sim: fleet %s: %w", path, err)
	}
	if f.Durations == (Durations{}) {
		f.Durations = DefaultDurations()
	}
	if f.Line == "" {
		f.Line = "6.12"
	}
	if f.FromKernel == "" {
		f.FromKernel = f.Line + ".0-old"
	}
	if f.ToKernel == "" {
		f.ToKernel = f.Line + ".1-new"
	}
	if err := f.Validate(); err != nil {
		return Fleet{}, fmt.Errorf("sim: fleet %s: %w", path, err)
	}
	return f, nil
}

// Validate checks the fleet: unique valid names, positive host counts,
// valid policies and windows, sane durations, and distinct kernels.
func (f Fleet) Validate() error {
	var errs []error
	if len(f.Datacenters) == 0 {
		errs = append(errs, errors.New("no datacenters"))
	}
	if f.FromKernel == f.ToKernel || f.Line == "" {
		errs = append(errs, fmt.Errorf("want a line and two distinct kernels, got line %q, %q → %q", f.Line, f.FromKernel, f.ToKernel))
	}
	seen := map[string]bool{}
	for _, d := range f.Datacenters {
		if !fsm.ValidName(d.Name) || seen[d.Name] {
			errs = append(errs, fmt.Errorf("datacenter %q: invalid or duplicate name", d.Name))
		}
		seen[d.Name] = true
		if d.Hosts <= 0 {
			errs = append(errs, fmt.Errorf("datacenter %s: want hosts > 0, got %d", d.Name, d.Hosts))
		}
		if !slices.Contains([]string{"", fsm.TierEdge, fsm.TierControl, fsm.TierStaging}, d.Tier) {
			errs = append(errs, fmt.Errorf("datacenter %s: tier %q: want edge, control or staging", d.Name, d.Tier))
		}
		p, err := d.policy()
		if err != nil {
			errs = append(errs, fmt.Errorf("datacenter %s: %w", d.Name, err))
		} else if d.Hosts > 0 && p.Floor(d.Hosts) > d.Hosts-1 {
			errs = append(errs, fmt.Errorf("datacenter %s: a capacity floor of %d%% of %d hosts admits no reboot", d.Name, d.MinHealthyPct, d.Hosts))
		}
	}
	for name, r := range map[string]Range{"stage": f.Durations.Stage, "drain": f.Durations.Drain, "kexec": f.Durations.Kexec, "cold": f.Durations.Cold, "verify": f.Durations.Verify} {
		if err := r.validate(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Hosts returns the number of hosts of the fleet.
func (f Fleet) Hosts() int {
	n := 0
	for _, d := range f.Datacenters {
		n += d.Hosts
	}
	return n
}

// policy returns the datacenter's scheduler policy (as the state machine
// will hold it).
func (d Datacenter) policy() (schedule.Policy, error) {
	p := schedule.Policy{SlotPct: d.SlotPct, SlotLimit: d.SlotLimit, MinHealthyPct: d.MinHealthyPct, FailureBudget: d.FailureBudget}
	if d.Window != "" {
		w, err := schedule.ParseWindow(d.Window)
		if err != nil {
			return p, fmt.Errorf("window: %w", err)
		}
		p.Window = w
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// update returns the state machine's update that creates the datacenter
// with its policy.
func (d Datacenter) update() wire.DatacenterUpdate {
	tier := d.tier()
	u := wire.DatacenterUpdate{Tier: &tier, MinHealthyPct: &d.MinHealthyPct, FailureBudget: &d.FailureBudget}
	if d.SlotLimit > 0 {
		u.SlotLimit = &d.SlotLimit
	} else {
		u.SlotPct = &d.SlotPct
	}
	if d.Window != "" {
		u.Window = &d.Window
	}
	return u
}

// tier returns the datacenter's tier (edge when unset).
func (d Datacenter) tier() string {
	if d.Tier == "" {
		return fsm.TierEdge
	}
	return d.Tier
}

// region returns the datacenter's region for plots.
func (d Datacenter) region() string {
	if d.Region != "" {
		return d.Region
	}
	fields := strings.Fields(d.Window)
	if len(fields) == 3 {
		zone := fields[2]
		if i := strings.IndexByte(zone, '/'); i > 0 {
			return zone[:i]
		}
		return zone
	}
	return "other"
}
