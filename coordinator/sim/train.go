package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
	"github.com/kroll-dev/kroll/coordinator/schedule"
	"github.com/kroll-dev/kroll/coordinator/train"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Train defaults (krollctl train set's usual values).
const (
	DefaultStagingSoak           = 72 * time.Hour
	DefaultControlSoak           = 24 * time.Hour
	DefaultEdgeCycle             = 672 * time.Hour
	DefaultDeparture             = "Tue 09:00 UTC"
	DefaultBuildEvery            = 7 * 24 * time.Hour
	DefaultMitigateAfter         = 6 * time.Hour
	DefaultMitigationPropagation = 10 * time.Minute
	// MaxTrainWeeks bounds a train simulation.
	MaxTrainWeeks = 104
	// trainFeed names the simulated build feed.
	trainFeed = "sim-weekly"
	// safetyTick is the longest the simulated leader goes without a
	// tick: the simulator ticks exactly when it knows something is due
	// (a wave's last host finished, a soak or pacing delay ends, a build
	// arrives, a departure is due), and this catches anything else.
	safetyTick = 6 * time.Hour
)

// TrainOptions configure RunTrain. Zero durations take the defaults
// above; Weeks must be set.
type TrainOptions struct {
	// Seed seeds the random durations and jitter.
	Seed uint64
	// Weeks is how long the simulation runs (1 … MaxTrainWeeks).
	Weeks int
	// BuildEvery is the interval of the builds the feed publishes; the
	// first arrives at the start.
	BuildEvery time.Duration
	// FailBuild (1-based; 0 = none) is the build whose kernel fails its
	// health checks on every host that boots it: it fails staging and is
	// rejected.
	FailBuild int
	// Staging are the train's staging datacenters; nil = every
	// staging-tier datacenter of the fleet.
	Staging     []string
	StagingSoak time.Duration
	ControlSoak time.Duration
	EdgeCycle   time.Duration
	Departure   string
	// CVE enables the exposure report: a CVE disclosed CVEDay days after
	// the start, fixed in the first build published after it.
	CVE    bool
	CVEDay float64
	// MitigateAfter is when, after the disclosure, a mitigation policy is
	// pushed; MitigationPropagation how long it takes to reach and be
	// enforced on every host (heartbeat answers).
	MitigateAfter         time.Duration
	MitigationPropagation time.Duration
	// Start is the simulated start; zero = 2026-11-02T00:00:00Z (a
	// Monday).
	Start time.Time
	// SampleEvery is the plot's sampling interval; 0 = 1 hour.
	SampleEvery time.Duration
	// OperatorDelay is how long an operator takes to reset hosts a
	// failed build left failed (and resume their datacenter); 0 = 1 hour.
	OperatorDelay time.Duration
	// Reboot is RebootKexec (default) or RebootCold.
	Reboot string
}

// Validate fills in the defaults and checks the options against fleet;
// every problem is reported at once.
func (o *TrainOptions) Validate(fleet Fleet) error {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.BuildEvery, DefaultBuildEvery)
	def(&o.StagingSoak, DefaultStagingSoak)
	def(&o.ControlSoak, DefaultControlSoak)
	def(&o.EdgeCycle, DefaultEdgeCycle)
	def(&o.MitigateAfter, DefaultMitigateAfter)
	def(&o.MitigationPropagation, DefaultMitigationPropagation)
	def(&o.SampleEvery, time.Hour)
	def(&o.OperatorDelay, time.Hour)
	if o.Departure == "" {
		o.Departure = DefaultDeparture
	}
	if o.Reboot == "" {
		o.Reboot = RebootKexec
	}
	if o.Start.IsZero() {
		o.Start = defaultStart()
	}
	if o.Staging == nil {
		for _, d := range fleet.Datacenters {
			if d.Tier == fsm.TierStaging {
				o.Staging = append(o.Staging, d.Name)
			}
		}
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Weeks < 1 || o.Weeks > MaxTrainWeeks {
		bad("weeks %d: want 1 to %d", o.Weeks, MaxTrainWeeks)
	}
	if o.BuildEvery < time.Hour {
		bad("build interval %s: want at least 1h", o.BuildEvery)
	}
	builds := o.builds()
	if o.FailBuild < 0 || (o.FailBuild > 0 && o.FailBuild > builds) {
		bad("failing build %d: want 0 (none) or 1 to %d (the builds of the run)", o.FailBuild, builds)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{{"mitigation delay", o.MitigateAfter, 0}, {"mitigation propagation", o.MitigationPropagation, 0},
		{"sample interval", o.SampleEvery, time.Minute}, {"operator delay", o.OperatorDelay, time.Minute}} {
		if d.v < d.min {
			bad("%s %s: want at least %s", d.name, d.v, d.min)
		}
	}
	if o.CVE && (o.CVEDay < 0 || o.CVEDay >= float64(7*o.Weeks)) {
		bad("CVE day %g: want 0 ≤ day < %d (within the run)", o.CVEDay, 7*o.Weeks)
	}
	if o.Reboot != RebootKexec && o.Reboot != RebootCold {
		bad("reboot %q: want kexec or cold", o.Reboot)
	}
	// The state machine's bounds of a train (fsm.ValidateSetTrain), told
	// before the run.
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"staging soak", o.StagingSoak}, {"control soak", o.ControlSoak}} {
		if d.v < fsm.MinTrainSoak || d.v > fsm.MaxTrainSoak {
			bad("%s %s: want %s to %s", d.name, d.v, fsm.MinTrainSoak, fsm.MaxTrainSoak)
		}
	}
	if week := 7 * 24 * time.Hour; o.EdgeCycle < week || o.EdgeCycle > fsm.MaxEdgeCycle || o.EdgeCycle%week != 0 {
		bad("edge cycle %s: want whole weeks (departures fall on one weekday), 1 to 52", o.EdgeCycle)
	}
	if _, err := train.ParseDeparture(o.Departure); err != nil {
		errs = append(errs, err)
	}
	if len(o.Staging) == 0 {
		bad("no staging datacenter: the fleet has no staging tier")
	}
	return errors.Join(errs...)
}

// duration is the simulated run's length.
func (o *TrainOptions) duration() time.Duration { return time.Duration(o.Weeks) * 7 * 24 * time.Hour }

// builds is the number of builds published in the run (the first at the
// start).
func (o *TrainOptions) builds() int {
	if o.BuildEvery <= 0 {
		return 0
	}
	return int((o.duration()-1)/o.BuildEvery) + 1
}

// buildAt is when build k (1-based) is published.
func (o *TrainOptions) buildAt(k int) time.Duration { return time.Duration(k-1) * o.BuildEvery }

// Train simulation event kinds (beside the rollout simulator's).
const (
	tNotice kind = 64 + iota
	tStaged
	tDrained
	tBooted
	tVerified
	tRolledBack
	tWake
	tOperator
	tTick
	tSample
	tBuild
)

// Train host phases.
const (
	thIdle uint8 = iota
	thStaging
	thWaiting
	thHolding
	thFailed
)

type trainHost struct {
	id    string
	dc    int32
	phase uint8
	// build is the build the host runs (0: the fleet's FromKernel, k:
	// build k); target the build it is upgrading to.
	build, target int
	rollback      bool
	token         uint64
	// gen is its datacenter's wave generation when it noticed its target.
	gen uint32
	// since is when the host started running build.
	since time.Duration
	// Days-behind and exposure accumulators.
	maxBehind           time.Duration
	areaBehind          float64 // ∫ behind dt, in hours²
	exposed, exposedMit time.Duration
}

type trainDC struct {
	simDCBase
	// todo counts hosts working on a target (noticed, not finished).
	todo int
	// gen counts the waves that started on the datacenter.
	gen uint32
}

// trainSim is one train simulation's state.
type trainSim struct {
	engine
	opt   TrainOptions
	fleet Fleet
	end   time.Duration

	hosts   []trainHost
	dcs     []trainDC
	dcIndex map[string]int

	// builds[k] describes build k (builds[0]: the initial kernel).
	builds  []BuildResult
	byID    map[string]int
	counts  []int // hosts per build
	noticed map[string]bool
	// validatedAt[k] is when build k was validated (-1: not yet).
	validatedAt []time.Duration
	fix         int // the CVE's fixing build (len(builds): none in the run)
	cveAt       time.Duration
	mitAt       time.Duration

	res TrainResult
}

// RunTrain simulates the release train of fleet's line over opt.Weeks:
// builds arrive from a feed (fsm RecordFeedBuild) every opt.BuildEvery;
// the state machine is ticked and train.Decide's steps applied as the
// leader does (coordinator/store driveTrains), on simulated time; the
// simulated agents take whatever their heartbeat answers name. It
// reports the hosts' days behind the newest validated build and, with
// opt.CVE, the exposure to a CVE with and without a mitigation.
func RunTrain(ctx context.Context, fleet Fleet, opt TrainOptions) (*TrainResult, error) {
	if err := fleet.Validate(); err != nil {
		return nil, fmt.Errorf("sim: invalid fleet: %w", err)
	}
	if err := opt.Validate(fleet); err != nil {
		return nil, fmt.Errorf("sim: train: %w", err)
	}
	s := &trainSim{
		engine: newEngine(ctx, opt.Seed, 0x747261696e73696d, opt.Start, tWake, tOperator, tTick, opt.OperatorDelay),
		opt:    opt, fleet: fleet, end: opt.duration(),
		dcIndex: map[string]int{}, byID: map[string]int{}, noticed: map[string]bool{},
	}
	return runSim(s, &s.res)
}

func (s *trainSim) reboot() time.Duration {
	if s.opt.Reboot == RebootCold {
		return s.uniform(s.fleet.Durations.Cold)
	}
	return s.uniform(s.fleet.Durations.Kexec)
}

// kernel returns build k's kernel version.
func (s *trainSim) kernel(k int) string { return s.builds[k].Kernel }

func (s *trainSim) setup() error {
	fl := s.fleet
	for i, d := range fl.Datacenters {
		base, err := s.addDatacenter(d)
		if err != nil {
			return err
		}
		s.dcIndex[d.Name] = i
		s.dcs = append(s.dcs, trainDC{simDCBase: base})
	}
	// Builds: 0 is the kernel the fleet runs, then one per interval,
	// each a patch level above the one before.
	from, err := kernelPatch(fl.FromKernel)
	if err != nil {
		return fmt.Errorf("sim: train: %w", err)
	}
	s.builds = []BuildResult{{Build: 0, Kernel: fl.FromKernel, AddedDay: -1, ValidatedDay: -1, ControlDay: -1, DepartedDay: -1, State: "running at the start"}}
	for k := 1; k <= s.opt.builds(); k++ {
		kern := fmt.Sprintf("%s.%d%s", from.prefix, from.patch+k, from.suffix)
		id := fmt.Sprintf("build-%02d-%s", k, kern)
		s.builds = append(s.builds, BuildResult{Build: k, Release: id, Kernel: kern, AddedDay: days(s.opt.buildAt(k)), ValidatedDay: -1, ControlDay: -1, DepartedDay: -1})
		s.byID[id] = k
		s.push(s.opt.buildAt(k), tBuild, int32(k), -1)
	}
	s.counts = make([]int, len(s.builds))
	s.validatedAt = make([]time.Duration, len(s.builds))
	for k := range s.validatedAt {
		s.validatedAt[k] = -1
	}
	s.fix = len(s.builds)
	if s.opt.CVE {
		s.cveAt = time.Duration(s.opt.CVEDay * float64(24*time.Hour))
		s.mitAt = s.cveAt + s.opt.MitigateAfter + s.opt.MitigationPropagation
		for k := 1; k < len(s.builds); k++ {
			if s.opt.buildAt(k) > s.cveAt {
				s.fix = k
				break
			}
		}
	}
	for i := range s.dcs {
		d := &s.dcs[i]
		for j := range d.spec.Hosts {
			h := trainHost{id: fmt.Sprintf("%s-h%04d", d.spec.Name, j+1), dc: int32(i)}
			d.hosts = append(d.hosts, int32(len(s.hosts)))
			s.hosts = append(s.hosts, h)
			s.heartbeat(&s.hosts[len(s.hosts)-1], wire.PhaseIdle)
		}
	}
	s.counts[0] = len(s.hosts)
	if s.err != nil {
		return s.err
	}
	set, err := train.SetTrain(train.Settings{Line: fl.Line, Staging: s.opt.Staging, StagingSoak: s.opt.StagingSoak,
		ControlSoak: s.opt.ControlSoak, EdgeCycle: s.opt.EdgeCycle, Departure: s.opt.Departure}, s.at())
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	s.exec(set)
	s.push(0, tSample, -1, -1)
	s.scheduleTick(0)
	return s.err
}

// patchKernel is a kernel version split around its patch level
// ("6.12.116-kroll1" → "6.12", 116, "-kroll1").
type patchKernel struct {
	prefix string
	patch  int
	suffix string
}

func kernelPatch(v string) (patchKernel, error) {
	var major, minor, patch int
	var rest string
	n, _ := fmt.Sscanf(v, "%d.%d.%d%s", &major, &minor, &patch, &rest)
	if n < 3 {
		return patchKernel{}, fmt.Errorf("from_kernel %q: want MAJOR.MINOR.PATCH[-SUFFIX] to number the builds after it", v)
	}
	return patchKernel{prefix: fmt.Sprintf("%d.%d", major, minor), patch: patch, suffix: rest}, nil
}

func (s *trainSim) heartbeat(h *trainHost, phase string) fsm.Result {
	k := h.build
	if phase == wire.PhaseVerifying && !h.rollback {
		k = h.target
	}
	return s.exec(fsm.Heartbeat{Heartbeat: wire.Heartbeat{
		HostID: h.id, Datacenter: s.dcs[h.dc].spec.Name, KernelLine: s.fleet.Line, Kernel: s.kernel(k), Phase: phase,
	}})
}

func (s *trainSim) loop() {
	s.res.Events = s.run(s.end, s.handle)
	s.now = s.end
}

func (s *trainSim) handle(e event) {
	switch e.kind {
	case tBuild:
		s.build(int(e.host))
	case tNotice:
		s.notice(e.host)
	case tStaged:
		s.staged(e.host)
	case tDrained:
		h := &s.hosts[e.host]
		s.heartbeat(h, wire.PhaseRebooting)
		s.push(s.now+s.reboot(), tBooted, e.host, -1)
	case tBooted:
		s.booted(e.host)
	case tVerified:
		s.verified(e.host)
	case tRolledBack:
		s.rolledBack(e.host)
	case tWake:
		n, ok := s.dcs[e.dc].woken(e.gen)
		if !ok {
			return
		}
		s.try(int(e.dc), n)
	case tOperator:
		s.operator(int(e.dc))
	case tTick:
		if e.host != -2 && (!s.tickPending || e.at != s.nextTickAt) {
			return // superseded by an earlier tick
		}
		if e.host != -2 {
			s.tickPending = false
		}
		s.tick()
	case tSample:
		s.sample()
		if next := s.now + s.opt.SampleEvery; next <= s.end {
			s.push(next, tSample, -1, -1)
		}
	}
}

// build publishes build k through the feed, as the feed poller records a
// verified build: a candidate release.
func (s *trainSim) build(k int) {
	b := s.builds[k]
	manifest, _ := json.Marshal(map[string]any{"id": b.Release, "line": s.fleet.Line, "kernel_version": b.Kernel, "build": k})
	s.exec(fsm.RecordFeedBuild{
		Build: fsm.FeedBuild{Feed: trainFeed, Line: s.fleet.Line, Key: "pool/main/l/linux/" + b.Release + ".deb",
			Package: "linux-image-" + b.Kernel, Version: b.Kernel, ManifestURL: "sim://" + trainFeed + "/" + b.Release + ".json",
			Release: b.Release, Digest: fmt.Sprintf("sim-%d", k)},
		Release: &fsm.Release{ID: b.Release, Line: s.fleet.Line, KernelVersion: b.Kernel, Kind: "build", KeyID: "sim",
			Source: fsm.SourceFeed + trainFeed, Manifest: manifest, Signature: json.RawMessage(`{}`)},
	})
	s.forceTick()
}

// forceTick ticks now, in addition to the scheduled tick.
func (s *trainSim) forceTick() {
	s.push(s.now, tTick, -2, -1)
}

// tick is the leader's tick: the state machine's Tick, then the train's
// steps (train.Decide on the state just ticked, each applied as a
// TrainStep command; a refused one is recorded, as the leader logs it).
func (s *trainSim) tick() {
	s.exec(fsm.Tick{Timing: s.timing})
	s.res.Ticks++
	var steps []fsm.TrainStep
	s.f.View(func(st *fsm.State) { steps = train.Decide(st, st.Now) })
	for _, step := range steps {
		r := s.f.Exec(s.at(), step)
		rec := TrainStepResult{Day: days(s.now), Action: step.Action, Release: step.Release, Reason: step.Reason}
		if r.Err != nil {
			rec.Refused = r.Err.Value
		}
		if step.Action != fsm.StepSupersede {
			s.res.Steps = append(s.res.Steps, rec)
		}
		if k, ok := s.byID[step.Release]; ok && r.Err == nil {
			switch step.Action {
			case fsm.StepControl:
				s.builds[k].ControlDay = days(s.now)
			case fsm.StepDepart:
				s.builds[k].DepartedDay = days(s.now)
			case fsm.StepStage:
				s.builds[k].StagedDay = days(s.now)
			}
		}
	}
	s.afterTick()
}

// afterTick reads what the tick changed: newly validated builds, newly
// started waves (their hosts notice them in their next heartbeat), and
// when the next tick is due.
func (s *trainSim) afterTick() {
	next := s.now + safetyTick
	s.f.View(func(st *fsm.State) {
		for k := 1; k < len(s.builds); k++ {
			rel := st.Releases[s.builds[k].Release]
			if rel != nil && s.validatedAt[k] < 0 && fsm.ValidatedForTrain(rel) {
				s.validatedAt[k] = s.now
				s.builds[k].ValidatedDay = days(s.now)
			}
		}
		if t := st.Trains[s.fleet.Line]; t != nil && t.NextDeparture.After(s.at()) {
			next = min(next, t.NextDeparture.Sub(s.start))
		}
		ids := make([]string, 0, len(st.Rollouts))
		for id, r := range st.Rollouts {
			if r.State == fsm.RolloutRunning {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			r := st.Rollouts[id]
			edgeWaves, edgeIdx := 0, 0
			var edgeStart time.Time
			for _, w := range r.Waves {
				if w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl {
					edgeWaves++
				}
			}
			for wi, w := range r.Waves {
				isEdge := w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl
				if w.Started.IsZero() {
					if isEdge && edgeIdx > 0 && !r.Expedite {
						if at := edgeStart.Add(time.Duration(edgeIdx) * (r.Cycle / time.Duration(edgeWaves))).Sub(s.start); at > s.now {
							next = min(next, at)
						}
					}
					break
				}
				if isEdge {
					if edgeIdx == 0 {
						edgeStart = w.Started
					}
					edgeIdx++
				}
				if (w.Name == fsm.WaveStaging || w.Name == fsm.WaveCanary) && !w.Completed.IsZero() && w.Passed.IsZero() {
					if at := w.Completed.Add(r.Soak).Sub(s.start); at >= s.now {
						next = min(next, max(at, s.now+time.Second))
					}
				}
				key := fmt.Sprintf("%s/%d", id, wi)
				if s.noticed[key] {
					continue
				}
				s.noticed[key] = true
				for _, name := range w.Datacenters {
					di := s.dcIndex[name]
					d := &s.dcs[di]
					d.gen++
					for _, hi := range d.hosts {
						if s.hosts[hi].phase == thIdle {
							s.push(s.now+s.jitter(heartbeatInterval), tNotice, hi, -1)
						}
					}
				}
			}
		}
	})
	s.scheduleTick(next)
}

// notice: the host heartbeats; when the answer names a build it does
// not run, it stages it.
func (s *trainSim) notice(hi int32) {
	h := &s.hosts[hi]
	if h.phase != thIdle {
		return
	}
	r := s.heartbeat(h, wire.PhaseIdle)
	if r.Release == nil {
		return
	}
	k, ok := s.byID[r.Release.ID]
	if !ok || k == h.build {
		return
	}
	d := &s.dcs[h.dc]
	h.target, h.gen, h.phase = k, d.gen, thStaging
	d.todo++
	s.heartbeat(h, wire.PhaseStaging)
	s.push(s.now+s.uniform(s.fleet.Durations.Stage), tStaged, hi, -1)
}

func (s *trainSim) staged(hi int32) {
	h := &s.hosts[hi]
	h.phase = thWaiting
	d := &s.dcs[h.dc]
	d.queue = append(d.queue, hi)
	if !d.blocked {
		s.try(int(h.dc), 1)
	}
}

// try lets up to n (n < 0: all) waiting hosts of datacenter di ask for a
// slot, in line order, until one is denied. A host first heartbeats: when
// its answer no longer names its target (the rollout failed, was
// superseded or paused) it gives up and goes back to idle.
func (s *trainSim) try(di, n int) {
	d := &s.dcs[di]
	for n != 0 && d.qhead < len(d.queue) {
		hi := d.queue[d.qhead]
		h := &s.hosts[hi]
		r := s.heartbeat(h, wire.PhaseWaitingSlot)
		if r.Release == nil || s.byID[r.Release.ID] != h.target {
			d.popWaiting()
			h.phase = thIdle
			s.heartbeat(h, wire.PhaseIdle)
			s.done(hi)
			continue
		}
		a := s.f.Exec(s.at(), fsm.Acquire{Datacenter: d.spec.Name, Host: h.id, Owner: fsm.OwnerAgent, Timing: s.timing})
		if a.Err != nil {
			s.denied(di, schedule.Reason(a.Reason))
			return
		}
		n--
		d.popWaiting()
		s.res.Grants++
		h.phase, h.token = thHolding, a.Slot.Token
		d.holders++
		s.check(di)
		s.heartbeat(h, wire.PhaseDraining)
		s.push(s.now+s.uniform(s.fleet.Durations.Drain), tDrained, hi, -1)
	}
}

// denied blocks datacenter di until a wake (see engine.denied).
func (s *trainSim) denied(di int, reason schedule.Reason) {
	s.engine.denied(&s.dcs[di].simDCBase, di, reason, &s.res.Denials)
}

// wake schedules a wake of datacenter di at at (see engine.wake).
func (s *trainSim) wake(di int, at time.Duration, all bool) {
	s.engine.wake(&s.dcs[di].simDCBase, di, at, all)
}

// released counts a slot given back and wakes the datacenter's waiting
// hosts.
func (s *trainSim) released(di int) {
	s.engine.released(&s.dcs[di].simDCBase, di)
}

// callOperator schedules an operator's look at datacenter di after the
// operator delay.
func (s *trainSim) callOperator(di int) {
	s.engine.callOperator(&s.dcs[di].simDCBase, di, s.now+s.opt.OperatorDelay)
}

func (s *trainSim) booted(hi int32) {
	h := &s.hosts[hi]
	if h.rollback {
		s.heartbeat(h, wire.PhaseVerifying)
		s.push(s.now+s.uniform(s.fleet.Durations.Verify), tRolledBack, hi, -1)
		return
	}
	s.heartbeat(h, wire.PhaseVerifying)
	s.push(s.now+s.uniform(s.fleet.Durations.Verify), tVerified, hi, -1)
}

func (s *trainSim) verified(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	name := d.spec.Name
	kern := s.kernel(h.target)
	if h.target == s.opt.FailBuild {
		// The build is bad: unhealthy, roll back into the old kernel
		// (still holding the slot). The leader ticks within seconds: a
		// failure in a staging or canary wave fails its rollout.
		s.exec(fsm.Health{HealthReport: wire.HealthReport{HostID: h.id, Datacenter: name, Token: h.token, Healthy: false, Kernel: kern, Detail: "simulated bad build"}})
		s.res.HostsFailed++
		h.rollback = true
		s.exec(fsm.Heartbeat{Heartbeat: wire.Heartbeat{HostID: h.id, Datacenter: name, KernelLine: s.fleet.Line, Kernel: kern, Phase: wire.PhaseRollback}})
		s.forceTick()
		s.push(s.now+s.reboot(), tBooted, hi, -1)
		return
	}
	s.exec(fsm.Health{HealthReport: wire.HealthReport{HostID: h.id, Datacenter: name, Token: h.token, Healthy: true, Kernel: kern}})
	s.setBuild(h, h.target)
	s.heartbeat(h, wire.PhaseHealthy)
	s.exec(fsm.SlotRelease{Datacenter: name, Host: h.id, Token: h.token, Owner: fsm.OwnerAgent})
	s.heartbeat(h, wire.PhaseIdle)
	h.phase = thIdle
	s.res.Upgrades++
	s.released(int(h.dc))
	s.done(hi)
}

// rolledBack: the host is back on its old kernel and stays out of
// service (phase failed) until an operator resets it.
func (s *trainSim) rolledBack(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	s.heartbeat(h, wire.PhaseFailed)
	s.exec(fsm.SlotRelease{Datacenter: d.spec.Name, Host: h.id, Token: h.token, Owner: fsm.OwnerAgent, Reason: "upgrade failed: rolled back"})
	h.phase, h.rollback = thFailed, false
	d.down++
	s.released(int(h.dc))
	s.callOperator(int(h.dc))
	s.done(hi)
}

// done: host h finished working on its target. The leader ticks when a
// datacenter has no host left working (its wave may be complete), and a
// host whose datacenter started a newer wave meanwhile heartbeats again.
func (s *trainSim) done(hi int32) {
	h := &s.hosts[hi]
	d := &s.dcs[h.dc]
	d.todo--
	if d.todo == 0 {
		s.scheduleTick(s.now)
	}
	if h.phase == thIdle && h.gen != d.gen {
		s.push(s.now+s.jitter(heartbeatInterval), tNotice, hi, -1)
	}
}

// operator resets the failed hosts of datacenter di (kroll-agent reset:
// back in service on their old kernel) and resumes it if it is paused.
func (s *trainSim) operator(di int) {
	d := &s.dcs[di]
	d.operator = false
	for _, hi := range d.hosts {
		h := &s.hosts[hi]
		if h.phase != thFailed {
			continue
		}
		s.res.OperatorActions++
		h.phase = thIdle
		d.down--
		s.heartbeat(h, wire.PhaseIdle)
		s.push(s.now+s.jitter(heartbeatInterval), tNotice, hi, -1)
	}
	paused := false
	s.f.View(func(st *fsm.State) { paused = st.Datacenters[d.spec.Name].Policy.Paused })
	if paused {
		s.exec(fsm.Resume{Name: d.spec.Name})
		s.res.OperatorActions++
	}
	s.wake(di, s.now, true)
	s.scheduleTick(s.now)
}

// check counts violations of the slot limit and the capacity floor
// after a grant (both must stay 0).
func (s *trainSim) check(di int) {
	d := &s.dcs[di]
	if d.holders > d.limit {
		s.res.SlotLimitViolations++
	}
	if d.spec.Hosts-d.holders-d.down < d.floor {
		s.res.CapacityFloorViolations++
	}
}

// setBuild records that h runs build k from now on, closing the
// accounting of the build it ran.
func (s *trainSim) setBuild(h *trainHost, k int) {
	s.account(h, s.now)
	s.counts[h.build]--
	s.counts[k]++
	h.build, h.since = k, s.now
}

// firstNewerValidated returns when the first build newer than k was
// validated (-1: none so far).
func (s *trainSim) firstNewerValidated(k int) time.Duration {
	best := time.Duration(-1)
	for j := k + 1; j < len(s.validatedAt); j++ {
		if v := s.validatedAt[j]; v >= 0 && (best < 0 || v < best) {
			best = v
		}
	}
	return best
}

// account adds h's time on its build from h.since to t: behind the
// newest validated build from the moment a newer one was validated
// (validations come in time order, so the first one after the host's
// build fixes that moment), and exposed to the CVE from its disclosure
// while the build lacks the fix (until the mitigation covers it, for the
// mitigated figure).
func (s *trainSim) account(h *trainHost, t time.Duration) {
	if v := s.firstNewerValidated(h.build); v >= 0 && v < t {
		from := max(v, h.since)
		h.maxBehind = max(h.maxBehind, t-v)
		// ∫ (τ − v) dτ over [from, t).
		a, b := (from - v).Hours(), (t - v).Hours()
		h.areaBehind += (b*b - a*a) / 2
	}
	if s.opt.CVE && h.build < s.fix {
		if a, b := max(h.since, s.cveAt), t; b > a {
			h.exposed += b - a
		}
		if a, b := max(h.since, s.cveAt), min(t, s.mitAt); b > a {
			h.exposedMit += b - a
		}
	}
}

// behindNow returns how long h has been behind at t (0: it runs the
// newest validated build or newer).
func (s *trainSim) behindNow(h *trainHost, t time.Duration) time.Duration {
	if v := s.firstNewerValidated(h.build); v >= 0 && v < t {
		return t - v
	}
	return 0
}

func (s *trainSim) sample() {
	sr := &s.res.Series
	sr.Hours = append(sr.Hours, s.now.Hours())
	sr.HostsOnBuild = append(sr.HostsOnBuild, slices.Clone(s.counts))
	exposed := 0
	for k := 0; k < s.fix && k < len(s.counts); k++ {
		exposed += s.counts[k]
	}
	if !s.opt.CVE || s.now < s.cveAt {
		exposed = 0
	}
	sr.Exposed = append(sr.Exposed, exposed)
	if s.now >= s.mitAt {
		exposed = 0
	}
	sr.ExposedMitigated = append(sr.ExposedMitigated, exposed)
}

func days(d time.Duration) float64 { return d.Hours() / 24 }
