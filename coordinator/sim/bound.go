package sim

import (
	"time"

	"github.com/kroll-dev/kroll/coordinator/fsm"
)

// bound is the lower bound of a run, in durations since the rollout's
// start.
type bound struct {
	total     time.Duration
	waveStart []time.Duration
	waveDone  []time.Duration
}

// lowerBound computes a lower bound of the makespan from the same
// constraints the scheduler works under: slot limits, maintenance windows,
// the rollout's waves, soak and pacing, and the phase durations. No
// scheduler — however clairvoyant — can finish earlier.
//
// Per datacenter d whose wave may start at S:
//
//   - No host asks for a slot before it staged: the first grant is no
//     earlier than S + the smallest staging time.
//   - Every host holds a slot for its drain + reboot + verify time (the
//     durations the run drew for the host's first attempt), a host that
//     fails its checks also for the shortest possible rollback reboot and
//     verify (lost hosts and operator response times are not counted, so
//     this undercounts). With L
//     slots the datacenter needs at least W = max(Σ jobs / L, longest job)
//     of slot time per slot.
//   - Outside an expedited rollout, grants happen only inside the window.
//     A slot works at most the window's length per night plus one job that
//     was granted just before the window closed and runs past it; that
//     overhang is credited as the datacenter's mean job (so the bound is a
//     bound in expectation there, and a generous one: a scheduler cannot
//     in general start a job exactly at the window's close). The bound is
//     the time at which the slot time available since S reaches W.
//
// Waves mirror the state machine's gates (fsm advanceRollout): a wave
// starts once every earlier gating wave is done, not before the staging
// and canary waves' completion + soak, and (unless expedited) edge wave k not before
// the first edge wave's start + k·cycle/edge-waves. Each wave's bound start
// uses its predecessors' bound completions, and a wave is done when its
// slowest datacenter is. The fleet's bound is the latest wave's bound
// completion; it ignores heartbeat latency and retry timers, which a real
// fleet pays too.
func (s *sim) lowerBound() bound {
	b := bound{waveStart: make([]time.Duration, len(s.waves)), waveDone: make([]time.Duration, len(s.waves))}
	t0 := time.Duration(0) // the rollout's start, in rollout time
	var gatesDone, soakDone, edgeStart time.Duration
	edgeIdx, edgeWaves := 0, 0
	for _, w := range s.waves {
		if w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl {
			edgeWaves++
		}
	}
	for wi, w := range s.waves {
		isEdge := w.Name != fsm.WaveStaging && w.Name != fsm.WaveControl
		start := max(t0, gatesDone, soakDone)
		if isEdge {
			if edgeIdx == 0 {
				edgeStart = start
			} else if !s.opt.Expedite {
				start = max(start, edgeStart+time.Duration(edgeIdx)*(s.cycle/time.Duration(edgeWaves)))
			}
			edgeIdx++
		}
		done := start
		for _, name := range w.Datacenters {
			done = max(done, s.dcBound(s.dcIndex[name], start))
		}
		b.waveStart[wi], b.waveDone[wi] = start, done
		if w.Name == fsm.WaveStaging || w.Name == fsm.WaveCanary {
			soakDone = max(soakDone, done+s.soak)
			done += s.soak // the rollout is done only when it passed
		}
		if w.Gates {
			gatesDone = max(gatesDone, done)
		}
		b.total = max(b.total, done)
	}
	return b
}

// dcBound is datacenter di's earliest completion (rollout time) when its
// wave starts at start; see lowerBound.
func (s *sim) dcBound(di int, start time.Duration) time.Duration {
	d := &s.dcs[di]
	var work, longest time.Duration
	// A host that fails its checks also holds its slot for the
	// rollback: at least the shortest reboot and verify.
	rollback := s.fleet.Durations.Verify.Min() + s.fleet.Durations.Kexec.Min()
	if s.opt.Reboot == RebootCold {
		rollback = s.fleet.Durations.Verify.Min() + s.fleet.Durations.Cold.Min()
	}
	for _, hi := range d.hosts {
		h := &s.hosts[hi]
		j := h.drain + h.reboot + h.verify
		if h.fail {
			j += rollback
		}
		work += j
		longest = max(longest, j)
	}
	mean := work / time.Duration(len(d.hosts))
	perSlot := max(work/time.Duration(d.limit), longest)
	t := start + s.fleet.Durations.Stage.Min()
	if s.opt.Expedite || d.policy.Window.IsAlways() {
		return t + perSlot
	}
	rem := perSlot
	base := s.start.Add(s.rolloutStart)
	for range 10000 {
		open, close := d.policy.Window.Next(base.Add(t))
		if open.IsZero() {
			return t + rem
		}
		a := max(open.Sub(base), t)
		avail := close.Sub(base) - a + mean
		if rem <= avail {
			return a + rem
		}
		rem -= avail
		t = close.Sub(base)
	}
	return t + rem
}
