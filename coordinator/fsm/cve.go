package fsm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// LineUnknown is the line of hosts that reported no kernel line and no
// parsable kernel in a CVE report.
const LineUnknown = "unknown"

// CVEExposure reports the fleet's exposure to cve (krollctl cve show):
// every host is counted once, in total, under its kernel line and under
// its datacenter, as
//
//   - patched: its running kernel contains the fix. It does when the
//     kernel is the kernel_version of a release of its line that contains
//     the fix — one whose manifest lists cve in fixes, or one later on the
//     same line than such a release (kversion.CompareBuild of the two
//     kernels; releases whose order cannot be decided are not later), and
//     every release naming that kernel on the line agrees — or when a
//     policy for cve has a fixed_in entry the kernel release string meets
//     (kversion.FixedBy; a Debian package entry cannot be judged from the
//     release string and does not count);
//   - mitigated: not patched and a policy for cve reports enforcing;
//   - auditing: not patched and a policy for cve reports only auditing;
//   - exposed: none of these (also a host that reported no kernel).
//
// Per line the playbook names the release containing the fix that is
// furthest along the train and advises (see lineAdvice).
//
// It reads the state once: O(hosts) with a constant amount of work per
// host (kernels are judged once per distinct kernel string), plus the
// releases and policies.
func (s *State) CVEExposure(cve string) wire.CVEReport {
	pols := s.cvePolicies(cve)
	fixing := s.fixReleases(cve)
	kernelPatched := s.patchedKernels(fixing)

	type kernelClass struct {
		patched bool
		line    string
	}
	classes := make(map[string]kernelClass)
	classify := func(kernel string) kernelClass {
		if c, ok := classes[kernel]; ok {
			return c
		}
		c := kernelClass{patched: kernelPatched[kernel], line: LineUnknown}
		if v, err := kversion.Parse(kernel); err == nil {
			c.line = v.Line()
			for _, p := range pols {
				if ok, err := kversion.FixedBy(v, p.fixes); err == nil && ok {
					c.patched = true
				}
			}
		}
		classes[kernel] = c
		return c
	}

	rep := wire.CVEReport{CVE: cve, Lines: []wire.CVELine{}, Datacenters: []wire.CVEDatacenter{}}
	lines := map[string]*wire.CVECounts{}
	dcs := map[string]*wire.CVECounts{}
	counts := func(m map[string]*wire.CVECounts, k string) *wire.CVECounts {
		c := m[k]
		if c == nil {
			c = &wire.CVECounts{}
			m[k] = c
		}
		return c
	}
	for _, h := range s.Hosts {
		kc := kernelClass{line: LineUnknown}
		if h.Kernel != "" {
			kc = classify(h.Kernel)
		}
		line := h.KernelLine
		if line == "" {
			line = kc.line
		}
		var inc func(*wire.CVECounts)
		switch {
		case kc.patched:
			inc = func(c *wire.CVECounts) { c.Patched++ }
		default:
			switch hostCoverage(h, pols) {
			case wire.PolicyEnforcing:
				inc = func(c *wire.CVECounts) { c.Mitigated++ }
			case wire.PolicyAuditing:
				inc = func(c *wire.CVECounts) { c.Auditing++ }
			default:
				inc = func(c *wire.CVECounts) { c.Exposed++ }
			}
		}
		inc(&rep.CVECounts)
		inc(counts(lines, line))
		inc(counts(dcs, h.Datacenter))
	}

	for line, c := range lines {
		fix := s.bestFix(fixing[line])
		l := wire.CVELine{Line: line, CVECounts: *c}
		if fix != nil {
			l.FixRelease, l.FixState = fix.ID, s.releaseState(fix)
		}
		l.Advice = lineAdvice(cve, l, len(pols) > 0)
		rep.Lines = append(rep.Lines, l)
	}
	slices.SortFunc(rep.Lines, func(a, b wire.CVELine) int { return compareLines(a.Line, b.Line) })
	for name, c := range dcs {
		rep.Datacenters = append(rep.Datacenters, wire.CVEDatacenter{Datacenter: name, CVECounts: *c})
	}
	slices.SortFunc(rep.Datacenters, func(a, b wire.CVEDatacenter) int { return cmp.Compare(a.Datacenter, b.Datacenter) })
	return rep
}

// cvePolicy is a policy for the CVE with its parsed fixed_in entries.
type cvePolicy struct {
	id    string
	fixes []kversion.Fix
}

// cvePolicies returns the policies whose cve is cve (retired ones too:
// a host reporting one in force is covered by it), each with its fixed_in
// entries (none when the stored document no longer decodes: then it
// patches nothing).
func (s *State) cvePolicies(cve string) []cvePolicy {
	var out []cvePolicy
	for _, p := range s.Policies {
		if p.CVE != cve {
			continue
		}
		cp := cvePolicy{id: p.ID}
		// The zero time: the document was checked when pushed; an
		// expired policy's fixed_in still tells which kernels are fixed.
		if doc, err := policy.Decode([]byte(p.Document), time.Time{}); err == nil {
			cp.fixes, _ = kversion.ParseFixes(doc.AppliesTo.FixedIn)
		}
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b cvePolicy) int { return cmp.Compare(a.id, b.id) })
	return out
}

// hostCoverage is the strongest state a policy for the CVE has on h:
// enforcing, else auditing, else "".
func hostCoverage(h *Host, pols []cvePolicy) wire.PolicyState {
	var best wire.PolicyState
	for _, st := range h.Policies {
		if !slices.ContainsFunc(pols, func(p cvePolicy) bool { return p.id == st.ID }) {
			continue
		}
		switch st.State {
		case wire.PolicyEnforcing:
			return wire.PolicyEnforcing
		case wire.PolicyAuditing:
			best = wire.PolicyAuditing
		}
	}
	return best
}

// fixReleases returns, per line, the releases that contain the fix for
// cve: those whose manifest lists it in fixes and those later on the line
// than one of them within its build series (kversion.SameSeries, then
// kversion.CompareBuild; another series or undecidable is not later).
// Rejected releases are included; bestFix passes them over.
func (s *State) fixReleases(cve string) map[string][]*Release {
	type built struct {
		r  *Release
		v  kversion.Version
		ok bool
	}
	byLine := map[string][]built{}
	for _, r := range s.Releases {
		v, err := kversion.ParseBuild(r.KernelVersion, r.UpstreamVersion)
		byLine[r.Line] = append(byLine[r.Line], built{r: r, v: v, ok: err == nil})
	}
	out := map[string][]*Release{}
	for line, rs := range byLine {
		var listed []built
		for _, b := range rs {
			if releaseFixes(b.r, cve) {
				listed = append(listed, b)
			}
		}
		if len(listed) == 0 {
			continue
		}
		for _, b := range rs {
			isListed, later := releaseFixes(b.r, cve), false
			for _, f := range listed {
				if isListed || !b.ok || !f.ok {
					break
				}
				// Later only within the fixing release's build series:
				// a plain 6.12.82 does not carry a fix made in the
				// 6.12.80-cf1 series. Unsure is not later.
				if !kversion.SameSeries(b.v, f.v) {
					continue
				}
				if c, err := kversion.CompareBuild(b.v, f.v); err == nil && c > 0 {
					later = true
					break
				}
			}
			if isListed || later {
				out[line] = append(out[line], b.r)
			}
		}
	}
	return out
}

// releaseFixes reports whether r's manifest lists cve in fixes. The
// manifest was verified when the release was added; it is read leniently
// here (a release added before manifests had fixes lists none).
func releaseFixes(r *Release, cve string) bool {
	var m struct {
		Fixes []string `json:"fixes"`
	}
	if err := json.Unmarshal(r.Manifest, &m); err != nil {
		return false
	}
	return slices.Contains(m.Fixes, cve)
}

// patchedKernels returns the kernel versions whose releases contain the
// fix: a kernel named by several releases of a line is patched only if
// all of them contain it.
func (s *State) patchedKernels(fixing map[string][]*Release) map[string]bool {
	out := map[string]bool{}
	for _, frs := range fixing {
		for _, fr := range frs {
			out[fr.KernelVersion] = true
		}
	}
	for _, r := range s.Releases {
		if !out[r.KernelVersion] {
			continue
		}
		if !slices.ContainsFunc(fixing[r.Line], func(fr *Release) bool { return fr == r }) {
			out[r.KernelVersion] = false
		}
	}
	return out
}

// releaseStateRank orders release states by how far along the train a
// fix is, the most useful first.
var releaseStateRank = map[string]int{
	ReleaseRolling: 0, ReleaseValidated: 1, ReleaseDone: 2, ReleaseStaging: 3, ReleaseCandidate: 4,
}

// bestFix is the release of frs furthest along the train (rolling,
// validated, done, staging, candidate; rejected never), the newest added
// among equals; nil when there is none.
func (s *State) bestFix(frs []*Release) *Release {
	var (
		best     *Release
		bestRank int
	)
	for _, fr := range frs {
		rank, ok := releaseStateRank[s.releaseState(fr)]
		if !ok {
			continue
		}
		if best == nil || rank < bestRank || rank == bestRank && (fr.Added.After(best.Added) || fr.Added.Equal(best.Added) && fr.ID > best.ID) {
			best, bestRank = fr, rank
		}
	}
	return best
}

// releaseState is r.State, or, for a release without one (the train
// sets it; releases added before it have none), the state its rollouts
// imply: rolling while one runs or is paused, done after one completed,
// validated once a staging wave passed, rejected by a failed rollout or a
// rejection, else candidate.
func (s *State) releaseState(r *Release) string {
	if r.State != "" {
		return r.State
	}
	state := ReleaseCandidate
	if len(r.Rejected) > 0 {
		state = ReleaseRejected
	}
	for _, ro := range s.Rollouts {
		if ro.Release != r.ID {
			continue
		}
		switch ro.State {
		case RolloutRunning, RolloutPaused:
			return ReleaseRolling
		case RolloutDone:
			state = ReleaseDone
		case RolloutFailed:
			if state == ReleaseCandidate {
				state = ReleaseRejected
			}
		}
		if state == ReleaseCandidate && slices.ContainsFunc(ro.Waves, func(w Wave) bool { return w.Name == WaveStaging && !w.Passed.IsZero() }) {
			state = ReleaseValidated
		}
	}
	return state
}

// lineAdvice is the playbook's advice for one line: all patched; rolling
// (how far); a validated fix to expedite; a fix still in staging, or none
// (keep the mitigation); plus what to do about hosts that are exposed or
// only auditing.
func lineAdvice(cve string, l wire.CVELine, havePolicy bool) string {
	hosts := l.Hosts()
	unpatched := hosts - l.Patched
	if unpatched == 0 {
		return fmt.Sprintf("all %d hosts patched", hosts)
	}
	var advice string
	switch l.FixState {
	case ReleaseRolling:
		advice = fmt.Sprintf("rolling: %d of %d hosts patched (release %s)", l.Patched, hosts, l.FixRelease)
	case ReleaseValidated:
		advice = fmt.Sprintf("expedite the train (release %s validated)", l.FixRelease)
	case ReleaseDone:
		advice = fmt.Sprintf("release %s rolled out but %d of %d hosts are not patched: find them (host list) and keep the mitigation", l.FixRelease, unpatched, hosts)
	case ReleaseStaging, ReleaseCandidate:
		advice = fmt.Sprintf("fix in %s (release %s): keep the mitigation (%d hosts) until it is validated", l.FixState, l.FixRelease, unpatched)
	default:
		advice = fmt.Sprintf("no fix on line %s: keep the mitigation (%d hosts)", l.Line, unpatched)
	}
	switch {
	case l.Exposed > 0 && !havePolicy:
		advice += fmt.Sprintf("; %d hosts exposed: no policy for %s, push one", l.Exposed, cve)
	case l.Exposed > 0:
		advice += fmt.Sprintf("; %d hosts exposed: the policy is not in force there", l.Exposed)
	}
	if l.Auditing > 0 {
		advice += fmt.Sprintf("; %d hosts only auditing: push the policy in enforce mode", l.Auditing)
	}
	return advice
}

// compareLines orders kernel lines by version ("6.1" < "6.12" < "6.18"),
// anything that is not MAJOR.MINOR last by string.
func compareLines(a, b string) int {
	pa, oka := parseLine(a)
	pb, okb := parseLine(b)
	switch {
	case oka && okb:
		return cmp.Or(cmp.Compare(pa[0], pb[0]), cmp.Compare(pa[1], pb[1]))
	case oka != okb:
		if oka {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func parseLine(s string) ([2]int, bool) {
	ma, mi, ok := strings.Cut(s, ".")
	if !ok {
		return [2]int{}, false
	}
	x, err1 := strconv.Atoi(ma)
	y, err2 := strconv.Atoi(mi)
	return [2]int{x, y}, err1 == nil && err2 == nil
}
