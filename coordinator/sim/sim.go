package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Reboot methods.
const (
	RebootKexec = "kexec"
	RebootCold  = "cold"
)

// Options configure a run. The zero value is a normal (paced, windowed)
// cycle with kexec, no failures and seed 0.
type Options struct {
	// Seed seeds the random durations and jitter.
	Seed uint64
	// Expedite runs an expedited (CVE) rollout: no maintenance windows,
	// no pacing, a 30-minute staging soak.
	Expedite bool
	// Reboot is RebootKexec (default) or RebootCold.
	Reboot string
	// FailPct is the percentage of hosts whose new kernel fails its
	// health checks (they roll back and stay out of service).
	FailPct float64
	// LostPct is the percentage of reboots after which the host never
	// comes back on its own (it is marked lost at its reboot deadline and
	// an operator power-cycles it).
	LostPct float64
	// Budget is the rollout's per-wave failure budget; nil = AutoBudget.
	Budget *int
	// Start is the simulated start time; zero = 2026-11-02T00:00:00Z (a
	// Monday).
	Start time.Time
	// SampleEvery is the plot's sampling interval; 0 = 10 minutes.
	SampleEvery time.Duration
	// OperatorDelay is how long an operator takes to look at a paused
	// datacenter; 0 = 1 hour.
	OperatorDelay time.Duration
	// OperatorMaxFailPct: the operator resumes a datacenter paused by its
	// failure budget once, and only while at most this percentage of its
	// hosts failed (a worse kernel stays stopped); 0 = 10.
	OperatorMaxFailPct float64
	// MaxDuration stops the simulation; 0 = 120 days.
	MaxDuration time.Duration
	// CheckFSM cross-checks the simulator's counts against the state
	// machine's at every event (O(hosts of the datacenter) per event; for
	// tests).
	CheckFSM bool
	// OnEvent, when set, is called after every event with the
	// datacenter's counts as the state machine sees them (for tests).
	OnEvent func(InvariantSample)
}

// InvariantSample is the state of one datacenter after an event, read
// from the state machine.
type InvariantSample struct {
	Datacenter     string
	Hosts          int
	Holders        int
	EffectiveLimit int
	Serving        int
	Floor          int
	// AfterGrant marks a sample taken right after a grant.
	AfterGrant bool
}

// AutoBudget returns the per-wave rollout failure budget the simulator
// passes by default: 2% of the hosts of the largest wave, at least
// fsm.DefaultWaveBudget. The rollout's budget is one number for all waves
// (fsm.DefaultWaveBudget = 2 suits canaries, not a wave of 50,000 hosts,
// where a 1% background failure rate alone means ~500 failures): the
// datacenters' own failure budgets stop a bad kernel locally, and this
// wave budget is the fleet-wide backstop that pauses the rollout when more
// than 2% of a wave fails.
func AutoBudget(largestWave int) int {
	return max(fsm.DefaultWaveBudget, int(math.Ceil(0.02*float64(largestWave))))
}

// host phases in the simulator.
const (
	hIdle uint8 = iota
	hStaging
	hWaiting
	hHolding
	hLost // holding a slot, silent
	hDown // lost, slot released by an operator, not yet repaired
	hDone
	hFailed
)

type simHost struct {
	id    string
	dc    int32
	phase uint8
	// rollback: the current reboot goes back to the old kernel.
	rollback bool
	token    uint64
	attempt  int
	granted  time.Duration
	// The first attempt's durations (the lower bound uses them).
	drain, reboot, verify time.Duration
	fail, lost            bool
}

type simDC struct {
	simDCBase
	region int
	wave   int
	failed int
	// budgetResumed: an operator resumed it after its failure budget
	// paused it once already.
	budgetResumed bool
	// leftPaused: the operator keeps it paused (bad kernel).
	leftPaused bool
}

type simWave struct {
	fsm.Wave
	hosts     int
	remaining int
	// failed counts the wave's unhealthy reports not reset since.
	failed  int
	noticed bool
}

// sim is one run's state.
type sim struct {
	engine
	opt   Options
	fleet Fleet

	hosts   []simHost
	dcs     []simDC
	dcIndex map[string]int
	regions []string
	waves   []simWave

	rolloutID     string
	releaseID     string
	rolloutStart  time.Duration
	soak, cycle   time.Duration
	finals        int
	lastFinal     time.Duration
	heldPaused    bool
	samplePending bool

	res Result
}

// heartbeatInterval bounds how long a host takes to see its wave start in
// a heartbeat answer.
const heartbeatInterval = 30 * time.Second

// defaultStart is the simulated start when Options.Start is zero: a
// Monday at midnight UTC.
func defaultStart() time.Time { return time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) }

// Run simulates one rollout of fleet's release through the fleet and
// returns its metrics. It returns an error for an invalid fleet or when
// the state machine refuses a command the simulation relies on.
func Run(ctx context.Context, fleet Fleet, opt Options) (*Result, error) {
	if err := fleet.Validate(); err != nil {
		return nil, fmt.Errorf("sim: invalid fleet: %w", err)
	}
	if opt.Reboot == "" {
		opt.Reboot = RebootKexec
	}
	if opt.Reboot != RebootKexec && opt.Reboot != RebootCold {
		return nil, fmt.Errorf("sim: reboot %q: want kexec or cold", opt.Reboot)
	}
	if opt.FailPct < 0 || opt.FailPct > 100 || opt.LostPct < 0 || opt.LostPct > 100 {
		return nil, fmt.Errorf("sim: fail and lost percentages must be within 0..100")
	}
	if opt.Start.IsZero() {
		opt.Start = defaultStart()
	}
	if opt.SampleEvery <= 0 {
		opt.SampleEvery = 10 * time.Minute
	}
	if opt.OperatorDelay <= 0 {
		opt.OperatorDelay = time.Hour
	}
	if opt.OperatorMaxFailPct <= 0 {
		opt.OperatorMaxFailPct = 10
	}
	if opt.MaxDuration <= 0 {
		opt.MaxDuration = 120 * 24 * time.Hour
	}
	s := &sim{
		engine:  newEngine(ctx, opt.Seed, 0x6b726f6c6c73696d, opt.Start, evWake, evOperator, evTick, opt.OperatorDelay),
		opt:     opt,
		fleet:   fleet,
		dcIndex: map[string]int{},
	}
	return runSim(s, &s.res)
}

func (s *sim) setup() error {
	fl := s.fleet
	regionIndex := map[string]int{}
	for i, d := range fl.Datacenters {
		base, err := s.addDatacenter(d)
		if err != nil {
			return err
		}
		reg := d.region()
		ri, ok := regionIndex[reg]
		if !ok {
			ri = len(s.regions)
			regionIndex[reg] = ri
			s.regions = append(s.regions, reg)
		}
		s.dcIndex[d.Name] = i
		s.dcs = append(s.dcs, simDC{simDCBase: base, region: ri, wave: -1})
	}
	reboot := fl.Durations.Kexec
	if s.opt.Reboot == RebootCold {
		reboot = fl.Durations.Cold
	}
	for i := range s.dcs {
		d := &s.dcs[i]
		for j := range d.spec.Hosts {
			h := simHost{
				id: fmt.Sprintf("%s-h%04d", d.spec.Name, j+1), dc: int32(i),
				drain: s.uniform(fl.Durations.Drain), reboot: s.uniform(reboot), verify: s.uniform(fl.Durations.Verify),
				fail: s.rng.Float64()*100 < s.opt.FailPct,
				lost: s.rng.Float64()*100 < s.opt.LostPct,
			}
			d.hosts = append(d.hosts, int32(len(s.hosts)))
			s.hosts = append(s.hosts, h)
			s.heartbeat(&s.hosts[len(s.hosts)-1], wire.PhaseIdle, fl.FromKernel)
		}
	}
	if s.err != nil {
		return s.err
	}
	s.now = time.Second
	s.releaseID = "rel-" + fl.ToKernel
	s.exec(fsm.AddRelease{Release: fsm.Release{ID: s.releaseID, Line: fl.Line, KernelVersion: fl.ToKernel, Kind: "build",
		Manifest: json.RawMessage(`{}`), Signature: json.RawMessage(`{}`)}})
	s.rolloutID = "sim"
	start := fsm.StartRollout{ID: s.rolloutID, Release: s.releaseID, Expedite: s.opt.Expedite}
	if s.opt.Expedite {
		start.Reason = "simulated CVE fix"
	}
	// The coordinator refuses a rollout without a staging or canary wave
	// unless forced; a simulated fleet may lack either tier on purpose.
	var staging, edge bool
	for _, d := range s.dcs {
		staging = staging || d.spec.Tier == fsm.TierStaging
		edge = edge || d.spec.Tier == "" || d.spec.Tier == fsm.TierEdge
	}
	if !staging || !edge {
		start.Force = true
		start.Reason = strings.TrimPrefix(start.Reason+"; simulated fleet without a staging or edge tier", "; ")
	}
	// A first plan (with a throwaway budget) tells the wave sizes the
	// automatic budget needs; it is computed by the state machine itself.
	budget := 0
	if s.opt.Budget != nil {
		budget = *s.opt.Budget
	} else {
		budget = AutoBudget(s.largestWave(start))
	}
	start.Budget = &budget
	s.res.RolloutBudget = budget
	s.rolloutStart = s.now
	s.exec(start)
	if s.err != nil {
		return s.err
	}
	s.f.View(func(st *fsm.State) {
		r := st.Rollouts[s.rolloutID]
		s.soak, s.cycle = r.Soak, r.Cycle
		for wi, w := range r.Waves {
			sw := simWave{Wave: w}
			sw.Datacenters = slices.Clone(w.Datacenters)
			for _, name := range w.Datacenters {
				di := s.dcIndex[name]
				s.dcs[di].wave = wi
				sw.hosts += s.dcs[di].spec.Hosts
			}
			sw.remaining = sw.hosts
			s.waves = append(s.waves, sw)
		}
	})
	s.afterTick()
	s.push(s.now, evSample, -1, -1)
	s.samplePending = true
	return s.err
}

// largestWave plans the rollout with the state machine's planner
// (fsm.PlanWaves) on the same datacenters and host counts, all hosts on
// the fleet's line, and returns its largest wave's host count (0 when the
// state machine would refuse the plan: then it refuses the rollout).
func (s *sim) largestWave(start fsm.StartRollout) int {
	dcs := make([]fsm.PlanDC, 0, len(s.dcs))
	for _, d := range s.dcs {
		tier := d.spec.Tier
		if tier == "" {
			tier = fsm.TierEdge
		}
		dcs = append(dcs, fsm.PlanDC{Name: d.spec.Name, Tier: tier, Hosts: len(d.hosts)})
	}
	rel := fsm.Release{ID: s.releaseID, Line: s.fleet.Line, KernelVersion: s.fleet.ToKernel}
	waves, err := fsm.PlanWaves(dcs, rel, start)
	if err != nil {
		return 0
	}
	largest := 0
	for _, w := range waves {
		n := 0
		for _, name := range w.Datacenters {
			n += s.dcs[s.dcIndex[name]].spec.Hosts
		}
		largest = max(largest, n)
	}
	return largest
}

func (s *sim) heartbeat(h *simHost, phase, kernel string) fsm.Result {
	return s.exec(fsm.Heartbeat{Heartbeat: wire.Heartbeat{
		HostID: h.id, Datacenter: s.dcs[h.dc].spec.Name, KernelLine: s.fleet.Line, Kernel: kernel, Phase: phase,
	}})
}

func (s *sim) loop() {
	s.res.Events = s.run(s.opt.MaxDuration, s.handle)
}

func (s *sim) handle(e event) {
	switch e.kind {
	case evNotice:
		s.notice(e.host)
	case evStaged:
		s.staged(e.host)
	case evDrained:
		s.drained(e.host)
	case evBooted:
		s.booted(e.host)
	case evVerified:
		s.verified(e.host)
	case evRolledBack:
		s.rolledBack(e.host)
	case evRepaired:
		s.repaired(e.host)
	case evWake:
		n, ok := s.dcs[e.dc].woken(e.gen)
		if !ok {
			return
		}
		s.try(int(e.dc), n)
	case evOperator:
		s.operator(int(e.dc))
	case evTick:
		if e.at != s.nextTickAt || !s.tickPending {
			if e.host != -2 { // forced ticks (reboot deadlines) always run
				return
			}
		} else {
			s.tickPending = false
		}
		s.exec(fsm.Tick{Timing: s.timing})
		s.afterTick()
	case evSample:
		s.samplePending = false
		s.sample()
		if s.finals < len(s.hosts) && len(s.q) > 0 {
			s.push(s.now+s.opt.SampleEvery, evSample, -1, -1)
			s.samplePending = true
		}
	}
	if e.dc >= 0 {
		s.check(int(e.dc), false)
	} else if e.host >= 0 {
		s.check(int(s.hosts[e.host].dc), false)
	}
}

// afterTick reads the rollout after a tick: it notices started waves,
// notes a pause, and schedules the next tick when a wave may start.
func (s *sim) afterTick() {
	var st fsm.Rollout
	s.f.View(func(state *fsm.State) {
		r := state.Rollouts[s.rolloutID]
		st = *r
		st.Waves = slices.Clone(r.Waves)
	})
	for wi := range st.Waves {
		s.waves[wi].Started, s.waves[wi].Completed = st.Waves[wi].Started, st.Waves[wi].Completed
	}
	if st.State != fsm.RolloutRunning {
		// Paused (over a wave's failure budget), aborted or done: the
		// hosts' heartbeat answers no longer name the release, so
		// waiting agents stop asking for slots.
		s.heldPaused = true
		return
	}
	for wi := range st.Waves {
		w := &s.waves[wi]
		if !w.Started.IsZero() && !w.noticed {
			w.noticed = true
			for _, name := range w.Datacenters {
				di := s.dcIndex[name]
				d := &s.dcs[di]
				for _, hi := range d.hosts {
					if s.hosts[hi].phase == hIdle {
						s.push(s.now+s.jitter(heartbeatInterval), evNotice, hi, -1)
					}
				}
			}
		}
	}
	// The next moment a wave may start: mirror of the state machine's
	// gates (fsm advanceRollout): every earlier gating wave complete, the
	// staging and canary waves passed (healthy through the soak), and the
	// edge pacing delay passed.
	var edgeStart time.Time
	edgeIdx, edgeWaves := 0, 0
	for _, w := range st.Waves {
		if w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl {
			edgeWaves++
		}
	}
	for _, w := range st.Waves {
		isEdge := w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl
		strict := w.Name == fsm.WaveStaging || w.Name == fsm.WaveCanary
		if !w.Started.IsZero() {
			if isEdge {
				if edgeIdx == 0 {
					edgeStart = w.Started
				}
				edgeIdx++
			}
			if w.Gates && w.Completed.IsZero() {
				return // a wave in progress; its last host ticks
			}
			if strict && w.Passed.IsZero() {
				// Soaking: the tick at its end passes the wave.
				s.scheduleTick(max(w.Completed.Add(st.Soak).Sub(s.start), s.now+time.Second))
				return
			}
			continue
		}
		next := s.at()
		if isEdge && edgeIdx > 0 && !st.Expedite {
			next = later(next, edgeStart.Add(time.Duration(edgeIdx)*(st.Cycle/time.Duration(edgeWaves))))
		}
		if at := next.Sub(s.start); at > s.now {
			s.scheduleTick(at)
		}
		return
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// notice: the host's heartbeat answer names the release; it stages.
func (s *sim) notice(hi int32) {
	h := &s.hosts[hi]
	if h.phase != hIdle {
		return
	}
	r := s.heartbeat(h, wire.PhaseIdle, s.fleet.FromKernel)
	if r.Release == nil || r.Release.ID != s.releaseID {
		return // the rollout paused or was aborted: nothing to do
	}
	h.phase = hStaging
	s.heartbeat(h, wire.PhaseStaging, s.fleet.FromKernel)
	s.push(s.now+s.uniform(s.fleet.Durations.Stage), evStaged, hi, -1)
}

// staged: the host asks for a slot, unless its datacenter's last request
// was denied and nothing changed since (the denial would repeat: the
// scheduler's decision depends only on the datacenter's state and the
// time, and every change of either wakes the datacenter); then it waits in
// line for the next wake.
func (s *sim) staged(hi int32) {
	h := &s.hosts[hi]
	h.phase = hWaiting
	s.heartbeat(h, wire.PhaseWaitingSlot, s.fleet.FromKernel)
	d := &s.dcs[h.dc]
	d.queue = append(d.queue, hi)
	if !d.blocked {
		s.try(int(h.dc), 1)
	}
}

// try lets up to n (n < 0: all) waiting hosts of datacenter di ask for a
// slot, in line order, until one is denied.
func (s *sim) try(di, n int) {
	d := &s.dcs[di]
	if s.heldPaused {
		return
	}
	for n != 0 && d.qhead < len(d.queue) {
		hi := d.queue[d.qhead]
		h := &s.hosts[hi]
		r := s.f.Exec(s.at(), fsm.Acquire{Datacenter: d.spec.Name, Host: h.id, Owner: fsm.OwnerAgent, Timing: s.timing})
		if r.Err != nil {
			s.denied(di, schedule.Reason(r.Reason))
			return
		}
		n--
		d.popWaiting()
		s.res.Grants++
		h.phase, h.token, h.granted = hHolding, r.Slot.Token, s.now
		h.attempt++
		d.holders++
		s.check(di, true)
		s.heartbeat(h, wire.PhaseDraining, s.fleet.FromKernel)
		s.push(s.now+s.dur(h, 0), evDrained, hi, -1)
	}
}

// dur returns a phase duration of h's current attempt (0 drain, 1
// reboot, 2 verify): the first attempt's were drawn up front, later ones
// are drawn now.
func (s *sim) dur(h *simHost, phase int) time.Duration {
	if h.attempt <= 1 && !h.rollback {
		return [3]time.Duration{h.drain, h.reboot, h.verify}[phase]
	}
	switch phase {
	case 0:
		return s.uniform(s.fleet.Durations.Drain)
	case 1:
		if s.opt.Reboot == RebootCold {
			return s.uniform(s.fleet.Durations.Cold)
		}
		return s.uniform(s.fleet.Durations.Kexec)
	}
	return s.uniform(s.fleet.Durations.Verify)
}

// denied handles a denial: the datacenter is blocked until a wake.
func (s *sim) denied(di int, reason schedule.Reason) {
	s.engine.denied(&s.dcs[di].simDCBase, di, reason, &s.res.Denials)
}

// callOperator schedules an operator's look at datacenter di at at.
func (s *sim) callOperator(di int, at time.Duration) {
	s.engine.callOperator(&s.dcs[di].simDCBase, di, at)
}

// wake schedules a wake of datacenter di at at (see engine.wake).
func (s *sim) wake(di int, at time.Duration, all bool) {
	s.engine.wake(&s.dcs[di].simDCBase, di, at, all)
}

// released counts a slot given back and wakes the datacenter.
func (s *sim) released(di int) {
	s.engine.released(&s.dcs[di].simDCBase, di)
}

func (s *sim) drained(hi int32) {
	h := &s.hosts[hi]
	kernel := s.fleet.FromKernel
	s.heartbeat(h, wire.PhaseRebooting, kernel)
	if h.lost && h.attempt == 1 && !h.rollback {
		// Never comes back: the state machine marks it lost at its
		// reboot deadline; tick right after it.
		h.phase = hLost
		s.res.HostsLost++
		at := h.granted + s.timing.RebootDeadline + time.Second
		s.push(at, evTick, -2, h.dc)
		// The lost host pages an operator, who looks a while later.
		s.callOperator(int(h.dc), at+s.opt.OperatorDelay)
		return
	}
	s.push(s.now+s.dur(h, 1), evBooted, hi, -1)
}

func (s *sim) booted(hi int32) {
	h := &s.hosts[hi]
	kernel := s.fleet.ToKernel
	if h.rollback {
		kernel = s.fleet.FromKernel
	}
	s.heartbeat(h, wire.PhaseVerifying, kernel)
	if h.rollback {
		s.push(s.now+s.dur(h, 2), evRolledBack, hi, -1)
		return
	}
	s.push(s.now+s.dur(h, 2), evVerified, hi, -1)
}

func (s *sim) verified(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	name := d.spec.Name
	if h.fail && h.attempt == 1 {
		// Unhealthy: report, roll back into the old kernel (still
		// holding the slot, routes withdrawn).
		s.exec(fsm.Health{HealthReport: wire.HealthReport{HostID: h.id, Datacenter: name, Token: h.token, Healthy: false, Kernel: s.fleet.ToKernel, Detail: "simulated health check failure"}})
		paused := false
		s.f.View(func(st *fsm.State) { paused = st.Datacenters[name].Policy.Paused })
		if paused {
			// The failure budget paused the datacenter: that pages an
			// operator.
			s.callOperator(int(h.dc), s.now+s.opt.OperatorDelay)
		}
		s.heartbeat(h, wire.PhaseRollback, s.fleet.ToKernel)
		h.rollback = true
		if d.wave >= 0 {
			// The coordinator ticks every few seconds: a wave over its
			// failure budget pauses the rollout right away, and any
			// failure in a staging or canary wave fails it at once. Tick
			// when this report does either.
			w := &s.waves[d.wave]
			w.failed++
			if w.failed > s.res.RolloutBudget || w.Name == fsm.WaveStaging || w.Name == fsm.WaveCanary {
				s.push(s.now, evTick, -2, h.dc)
			}
		}
		s.push(s.now+s.dur(h, 1), evBooted, hi, -1)
		return
	}
	s.exec(fsm.Health{HealthReport: wire.HealthReport{HostID: h.id, Datacenter: name, Token: h.token, Healthy: true, Kernel: s.fleet.ToKernel}})
	s.heartbeat(h, wire.PhaseHealthy, s.fleet.ToKernel)
	s.exec(fsm.SlotRelease{Datacenter: name, Host: h.id, Token: h.token, Owner: fsm.OwnerAgent})
	s.heartbeat(h, wire.PhaseIdle, s.fleet.ToKernel)
	h.phase = hDone
	s.res.HostsUpdated++
	s.released(int(h.dc))
	s.final(h)
}

// rolledBack: the host is back on the old kernel and stays out of service
// for an operator (DESIGN §4: phase failed); it gives its slot back.
func (s *sim) rolledBack(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	s.heartbeat(h, wire.PhaseFailed, s.fleet.FromKernel)
	s.exec(fsm.SlotRelease{Datacenter: d.spec.Name, Host: h.id, Token: h.token, Owner: fsm.OwnerAgent, Reason: "upgrade failed: rolled back"})
	h.phase = hFailed
	d.down++
	d.failed++
	s.res.HostsFailed++
	s.released(int(h.dc))
	// Failed hosts stay out of service for an operator; the rollout
	// counts them as finished (failed).
	s.final(h)
}

// final counts a host that reached its end state and ticks the state
// machine when its wave has no host left.
func (s *sim) final(h *simHost) {
	s.finals++
	s.lastFinal = s.now
	d := &s.dcs[h.dc]
	if d.wave < 0 {
		return
	}
	w := &s.waves[d.wave]
	w.remaining--
	if w.remaining == 0 {
		s.tickPending, s.nextTickAt = true, s.now
		s.push(s.now, evTick, -1, -1)
	}
}

// operator looks at a paused datacenter: releases the slots of lost hosts
// (and has them power-cycled), and resumes the datacenter unless too many
// of its hosts failed.
func (s *sim) operator(di int) {
	d := &s.dcs[di]
	d.operator = false
	var lost []string
	paused := false
	s.f.View(func(st *fsm.State) {
		dc := st.Datacenters[d.spec.Name]
		paused = dc.Policy.Paused
		for host, sl := range dc.Slots {
			if sl.Lost {
				lost = append(lost, host)
			}
		}
	})
	slices.Sort(lost)
	for _, id := range lost {
		for _, hi := range d.hosts {
			h := &s.hosts[hi]
			if h.id != id || h.phase != hLost {
				continue
			}
			s.exec(fsm.ForceRelease{Datacenter: d.spec.Name, Host: id, Reason: "simulated operator: host lost mid-reboot, power-cycling it"})
			s.res.OperatorActions++
			h.phase = hDown
			d.holders--
			d.down++
			s.push(s.now+s.uniform(s.fleet.Durations.Cold), evRepaired, hi, -1)
		}
	}
	if !paused {
		s.resetFailed(di)
		s.wake(di, s.now, true)
		return
	}
	if len(lost) == 0 && (d.budgetResumed || 100*float64(d.failed) > s.opt.OperatorMaxFailPct*float64(d.spec.Hosts)) {
		// Paused by its failure budget a second time, or too many of its
		// hosts failed: a bad kernel here; the operator keeps it stopped.
		s.res.DatacentersLeftPaused = append(s.res.DatacentersLeftPaused, d.spec.Name)
		d.leftPaused = true
		return
	}
	if len(lost) == 0 {
		d.budgetResumed = true
	}
	s.exec(fsm.Resume{Name: d.spec.Name})
	s.res.OperatorActions++
	s.res.DatacenterResumes++
	s.wake(di, s.now, true)
}

// resetFailed: failed hosts keep datacenter di below its capacity floor
// with no reboot in flight, so nothing will change by itself. The
// operator resets their agents (back in service on the old kernel) and
// lets them try the release again; the simulated failure was the host's,
// so the retry passes its checks.
func (s *sim) resetFailed(di int) {
	d := &s.dcs[di]
	if d.holders > 0 || d.spec.Hosts-d.down-1 >= d.floor {
		return
	}
	for _, hi := range d.hosts {
		h := &s.hosts[hi]
		if h.phase != hFailed {
			continue
		}
		s.res.OperatorActions++
		s.heartbeat(h, wire.PhaseIdle, s.fleet.FromKernel)
		d.down--
		h.phase, h.rollback, h.fail = hIdle, false, false
		// Pending again for its wave.
		s.finals--
		if d.wave >= 0 {
			s.waves[d.wave].remaining++
			s.waves[d.wave].failed--
		}
		s.push(s.now, evNotice, hi, -1)
	}
}

// repaired: a power-cycled lost host is back on its old kernel; it starts
// over.
func (s *sim) repaired(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	d.down--
	h.phase = hIdle
	s.heartbeat(h, wire.PhaseIdle, s.fleet.FromKernel)
	s.push(s.now, evNotice, hi, -1)
}

// check verifies the invariants of datacenter di: no more holders than
// its effective slot limit, and — after a grant — no fewer serving hosts
// than its capacity floor. It tracks the largest fraction out of service.
func (s *sim) check(di int, afterGrant bool) {
	d := &s.dcs[di]
	n := d.spec.Hosts
	out := d.holders + d.down
	if f := float64(out) / float64(n); f > s.res.MaxDCOutFraction {
		s.res.MaxDCOutFraction = f
	}
	if d.holders > d.limit {
		s.res.SlotLimitViolations++
	}
	if afterGrant && n-out < d.floor {
		s.res.CapacityFloorViolations++
	}
	if !s.opt.CheckFSM && s.opt.OnEvent == nil {
		return
	}
	var smp InvariantSample
	s.f.View(func(st *fsm.State) {
		v, _ := st.DatacenterView(d.spec.Name, s.at(), s.timing.AliveWithin)
		smp = InvariantSample{Datacenter: d.spec.Name, Hosts: v.Hosts, Holders: v.SlotsHeld, EffectiveLimit: v.EffectiveLimit,
			Serving: v.Serving, Floor: d.policy.Floor(v.Hosts), AfterGrant: afterGrant}
	})
	if s.opt.CheckFSM && (smp.Holders != d.holders || smp.Serving != n-out) && s.err == nil {
		s.err = fmt.Errorf("sim: %s at %s: state machine has %d holders and %d serving, simulator %d and %d",
			d.spec.Name, s.at().Format(time.RFC3339), smp.Holders, smp.Serving, d.holders, n-out)
	}
	if s.opt.OnEvent != nil {
		s.opt.OnEvent(smp)
	}
}
