package fsm

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Kernel lines (FormatV5). The coordinator assigns every agent host the
// kernel line it follows (Host.KernelLine), by precedence:
//
//  1. an operator's assignment (set_host_line: krollctl host set-line);
//  2. its datacenter's line rule (dc set --line L --line-pct P): the hosts
//     whose LineBucket is below P follow L — a stable hash of the host id,
//     so the chosen set does not change as other hosts come and go, and
//     only grows when P rises;
//  3. the line of the agent's configuration (Heartbeat.KernelLine), its
//     default.
//
// A change of the assigned line is a migration, and goes through the same
// gates as any rollout: the host's new line gives it its datacenter's
// target release of that line, and it takes a slot, drains and reboots
// like any other host. It moves (settleLine) only
//
//   - when it is at rest: holding no slot, not unhealthy, in phase idle,
//     healthy, staging or staged (the agent abandons a target it has not
//     acted on), and not a member of a staging or canary wave of its
//     current line that has not passed yet (leaving would fail it);
//     until then the assignment is recorded (PendingLine, LineWait) and
//     takes effect at the first command after (a heartbeat or a tick);
//   - and never to a downgrade: when its datacenter's target of the new
//     line is older than the kernel it runs (or the new line is older than
//     the running kernel's line when there is no target, or the two cannot
//     be ordered) the move is refused with an event and its reason, and
//     looked at again as the state changes (a newer target).
//
// A newly registered host takes its assigned line at once (it is not
// migrating), unless that would be a downgrade: then it follows its
// agent's line. Commands of formats 1 to 4 keep the line the agent
// reports, as their code did.

// TypeSetHostLine assigns a host a kernel line (FormatV5).
const TypeSetHostLine Type = "set_host_line"

// Sources of a host's line (Host.LineSource).
const (
	LineSourceOperator = "operator"
	LineSourceDCRule   = "dc-rule"
	LineSourceAgent    = "agent"
)

// HostLines is what the state keeps of a host's line besides the line it
// follows (Host.KernelLine).
type HostLines struct {
	// LineSource is where KernelLine comes from (LineSource*).
	LineSource string `json:"line_source,omitempty"`
	// AgentLine is the line of the agent's configuration, its default.
	AgentLine string `json:"agent_line,omitempty"`
	// OperatorLine is an operator's assignment ("": none).
	OperatorLine string `json:"operator_line,omitempty"`
	// FollowedLine is the line the agent reports it follows
	// (Heartbeat.AssignedLine).
	FollowedLine string `json:"followed_line,omitempty"`
	// PendingLine is the assigned line the host does not follow yet, and
	// LineWait why: it is mid-reboot, or the migration was refused.
	PendingLine string `json:"pending_line,omitempty"`
	LineWait    string `json:"line_wait,omitempty"`
}

// SetHostLine assigns Host kernel line Line (an operator's assignment,
// which wins over its datacenter's rule and its agent's default), or
// clears the assignment when Line is "". A line no registered release is
// of is refused unless Force.
type SetHostLine struct {
	Host   string `json:"host"`
	Line   string `json:"line,omitempty"`
	Force  bool   `json:"force,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// LineRule assigns kernel line Line to the hosts of a datacenter whose
// LineBucket is below Pct (percent).
type LineRule struct {
	Line string `json:"line"`
	Pct  int    `json:"pct"`
}

// ValidLine reports whether s is a kernel line an operator may assign
// (wire.ValidLine: MAJOR.MINOR, such as "6.12").
func ValidLine(s string) bool { return wire.ValidLine(s) }

// LineBucket places a host id in one of 100 buckets by a stable hash
// (FNV-1a, 64 bits) of the id: a line rule of P % selects the buckets
// below P. The bucket depends on the id alone.
func LineBucket(hostID string) int {
	h := fnv.New64a()
	h.Write([]byte(hostID))
	return int(h.Sum64() % 100)
}

// InLineRule reports whether a rule of pct % selects host hostID.
func InLineRule(hostID string, pct int) bool { return LineBucket(hostID) < pct }

// knownLine reports whether a registered release is of line.
func (s *State) knownLine(line string) bool {
	for _, r := range s.Releases {
		if r.Line == line {
			return true
		}
	}
	return false
}

// checkLine validates an operator's line: its form, and that a release of
// it is registered unless forced.
func (s *State) checkLine(line string, force bool) *wire.Error {
	if !ValidLine(line) {
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: fmt.Sprintf("kernel line %q: want MAJOR.MINOR, such as 6.12", line)}
	}
	if !force && !s.knownLine(line) {
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: fmt.Sprintf("kernel line %s: no registered release is of it (add one with 'krollctl release add', or assign it ahead of its first release with --force)", line)}
	}
	return nil
}

// wantedLine is the line h is assigned and where it comes from.
func (s *State) wantedLine(h *Host) (line, source string) {
	if h.OperatorLine != "" {
		return h.OperatorLine, LineSourceOperator
	}
	if dc := s.Datacenters[h.Datacenter]; dc != nil && dc.LineRule != nil && InLineRule(h.ID, dc.LineRule.Pct) {
		return dc.LineRule.Line, LineSourceDCRule
	}
	return h.AgentLine, LineSourceAgent
}

func (s *State) setHostLine(p SetHostLine) Result {
	h := s.Hosts[p.Host]
	switch {
	case h == nil:
		return refused(wire.KindNotFound, "unknown host %q", p.Host)
	case h.FleetLock:
		return refused(wire.KindInvalidRequest, "host %s only speaks FleetLock: no kroll agent follows a line there", p.Host)
	}
	if p.Line != "" {
		if e := s.checkLine(p.Line, p.Force); e != nil {
			return Result{Err: e}
		}
	}
	if h.OperatorLine == p.Line {
		return Result{}
	}
	h.OperatorLine = p.Line
	why := orDefault(p.Reason, "no reason given")
	switch {
	case p.Line == "":
		s.event("line_assigned", h.Datacenter, h.ID, "operator assignment of a kernel line cleared: %s", why)
	case p.Force && !s.knownLine(p.Line):
		s.event("line_assigned", h.Datacenter, h.ID, "operator assigned kernel line %s, FORCED (no release of it registered yet): %s", p.Line, why)
	default:
		s.event("line_assigned", h.Datacenter, h.ID, "operator assigned kernel line %s: %s", p.Line, why)
	}
	s.settleLine(h)
	return Result{}
}

// setLineRule applies the line fields of a datacenter update to next (the
// datacenter's new settings): Line and LinePct set the rule, LinePct
// alone changes the share of the rule in force, LinePct 0 removes it.
func (s *State) setLineRule(next *Datacenter, u wire.DatacenterUpdate) *wire.Error {
	if u.Line == nil && u.LinePct == nil {
		return nil
	}
	if s.format < FormatV5 {
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: fmt.Sprintf("line rules are new in format version %d", FormatV5)}
	}
	if u.LinePct == nil {
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: "line: give the share of hosts with line_pct (1 to 100)"}
	}
	pct := *u.LinePct
	if pct < 0 || pct > 100 {
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: fmt.Sprintf("line_pct %d: want 0 (no rule) to 100", pct)}
	}
	if pct == 0 {
		next.LineRule = nil
		return nil
	}
	var line string
	switch {
	case u.Line != nil:
		line = *u.Line
	case next.LineRule != nil:
		line = next.LineRule.Line
	default:
		return &wire.Error{Kind: wire.KindInvalidRequest, Value: fmt.Sprintf("line_pct: datacenter %s has no line rule; give its line too", next.Name)}
	}
	if e := s.checkLine(line, u.LineForce || (next.LineRule != nil && next.LineRule.Line == line)); e != nil {
		return e
	}
	next.LineRule = &LineRule{Line: line, Pct: pct}
	return nil
}

// lineRuleChanged records and applies a change of dc's line rule.
func (s *State) lineRuleChanged(dc *Datacenter, old *LineRule) {
	if (old == nil) == (dc.LineRule == nil) && (old == nil || *old == *dc.LineRule) {
		return
	}
	if dc.LineRule == nil {
		s.event("line_rule", dc.Name, "", "line rule (%s for %d%% of hosts) removed: its hosts go back to their agents' lines", old.Line, old.Pct)
	} else {
		s.event("line_rule", dc.Name, "", "line rule: kernel line %s for %d%% of hosts (by a stable hash of their ids)", dc.LineRule.Line, dc.LineRule.Pct)
	}
	for _, id := range sortedKeys(s.byDC[dc.Name]) {
		s.settleLine(s.byDC[dc.Name][id])
	}
}

// lineHeartbeat records the lines an agent's heartbeat reports: its
// configured default and the line it follows. Before FormatV5 the host
// follows the line it reports. registering says the host is new (or a
// FleetLock-only host whose agent starts heartbeating).
func (s *State) lineHeartbeat(h *Host, hb wire.Heartbeat, registering bool) {
	h.AgentLine, h.FollowedLine = hb.KernelLine, hb.AssignedLine
	if s.format < FormatV5 {
		h.KernelLine, h.LineSource = hb.KernelLine, LineSourceAgent
		return
	}
	s.settleLineOf(h, registering)
}

// lineAtRest explains why h cannot change line now ("" when it can).
func (s *State) lineAtRest(h *Host) string {
	if dc := s.Datacenters[h.Datacenter]; dc != nil && dc.Slots[h.ID] != nil {
		return "it holds a reboot slot"
	}
	if h.Unhealthy {
		return "it reported unhealthy"
	}
	switch h.Phase {
	case "", wire.PhaseIdle, wire.PhaseHealthy, wire.PhaseStaging, wire.PhaseStaged:
	default:
		return "it is in phase " + h.Phase
	}
	for _, id := range sortedKeys(s.Rollouts) {
		r := s.Rollouts[id]
		if r.Line != h.KernelLine || (r.State != RolloutRunning && r.State != RolloutPaused) {
			continue
		}
		for i := range r.Waves {
			w := &r.Waves[i]
			if _, member := w.Members[h.ID]; member && strictWave(w) && !w.Started.IsZero() && w.Passed.IsZero() {
				return fmt.Sprintf("it is in wave %s of rollout %s, which has not passed yet", w.Name, r.ID)
			}
		}
	}
	return ""
}

// downgradeRefusal explains why moving h to line would be a downgrade or
// cannot be told not to be one ("" when it is not): its datacenter's
// target release of line must not be older than the kernel h runs; with
// no target, line must not be older than the running kernel's line.
func (s *State) downgradeRefusal(h *Host, line string) string {
	if h.Kernel == "" {
		return "its running kernel is unknown"
	}
	cur, err := kversion.Parse(h.Kernel)
	if err != nil {
		return fmt.Sprintf("its running kernel %q cannot be ordered: %v", h.Kernel, err)
	}
	var rel *Release
	if dc := s.Datacenters[h.Datacenter]; dc != nil {
		if t, ok := dc.Targets[line]; ok {
			rel = s.Releases[t.Release]
		}
	}
	if rel == nil {
		major, minor, _ := strings.Cut(line, ".")
		lmaj, err1 := strconv.Atoi(major)
		lmin, err2 := strconv.Atoi(minor)
		if err1 != nil || err2 != nil {
			return fmt.Sprintf("line %q cannot be ordered against its running kernel %s", line, h.Kernel)
		}
		if c := cmpLine(lmaj, lmin, cur.Major(), cur.Minor()); c < 0 {
			return fmt.Sprintf("line %s is older than the line %s of its running kernel %s: never a downgrade", line, cur.Line(), h.Kernel)
		}
		return ""
	}
	tv, err := kversion.ParseBuild(rel.KernelVersion, rel.UpstreamVersion)
	if err != nil {
		return fmt.Sprintf("the target release %s of line %s has a kernel version that cannot be ordered: %v", rel.ID, line, err)
	}
	c, err := kversion.CompareBuild(tv, cur)
	switch {
	case err != nil:
		return fmt.Sprintf("the target release %s (kernel %s) of line %s is not known to be newer than its running kernel %s: %v", rel.ID, rel.KernelVersion, line, h.Kernel, err)
	case c < 0:
		return fmt.Sprintf("the target release %s (kernel %s) of line %s is older than its running kernel %s: never a downgrade", rel.ID, rel.KernelVersion, line, h.Kernel)
	}
	return ""
}

func cmpLine(amaj, amin, bmaj, bmin int) int {
	if amaj != bmaj {
		return cmpInt(amaj, bmaj)
	}
	return cmpInt(amin, bmin)
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// settleLine moves h to the line it is assigned when it may (see the top
// of this file), or records why it waits; from FormatV5 on.
func (s *State) settleLine(h *Host) { s.settleLineOf(h, false) }

// settleLineOf is settleLine; registering says h registers now.
func (s *State) settleLineOf(h *Host, registering bool) {
	if s.lineWaiting == nil {
		s.lineWaiting = map[string]bool{}
	}
	want, source := s.wantedLine(h)
	if h.FleetLock || want == h.KernelLine {
		delete(s.lineWaiting, h.ID)
		if !h.FleetLock {
			h.LineSource = source
		}
		h.PendingLine, h.LineWait = "", ""
		return
	}
	if registering {
		// Registering: the host takes its line at once, but never a
		// downgrade; then it follows its agent's line.
		if why := s.downgradeRefusal(h, want); why != "" && want != h.AgentLine {
			h.KernelLine, h.LineSource = h.AgentLine, LineSourceAgent
			s.lineWaits(h, want, "migration refused: "+why)
			return
		}
		h.KernelLine, h.LineSource, h.PendingLine, h.LineWait = want, source, "", ""
		delete(s.lineWaiting, h.ID)
		if source != LineSourceAgent {
			s.event("line_changed", h.Datacenter, h.ID, "host follows kernel line %s (%s) from registration", want, source)
		}
		return
	}
	if why := s.lineAtRest(h); why != "" {
		s.lineWaits(h, want, "deferred: "+why)
		return
	}
	if why := s.downgradeRefusal(h, want); why != "" {
		s.lineWaits(h, want, "migration refused: "+why)
		return
	}
	old := h.KernelLine
	h.KernelLine, h.LineSource, h.PendingLine, h.LineWait = want, source, "", ""
	delete(s.lineWaiting, h.ID)
	s.event("line_changed", h.Datacenter, h.ID, "host moved from kernel line %s to %s (%s)", orDefault(old, "none"), orDefault(want, "none"), source)
}

// lineWaits records that h waits for line want, with an event when the
// line or the reason is new.
func (s *State) lineWaits(h *Host, want, why string) {
	s.lineWaiting[h.ID] = true
	if h.PendingLine == want && h.LineWait == why {
		return
	}
	h.PendingLine, h.LineWait = s.intern(want), s.intern(why)
	typ := "line_deferred"
	if strings.HasPrefix(why, "migration refused") {
		typ = "line_refused"
	}
	s.event(typ, h.Datacenter, h.ID, "move to kernel line %s %s", want, why)
}

// settleWaitingLines looks again at every host waiting for its line (each
// tick, from FormatV5 on), in id order.
func (s *State) settleWaitingLines() {
	if len(s.lineWaiting) == 0 {
		return
	}
	ids := make([]string, 0, len(s.lineWaiting))
	for id := range s.lineWaiting {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if h := s.Hosts[id]; h != nil {
			s.settleLine(h)
		} else {
			delete(s.lineWaiting, id)
		}
	}
}

// reindexLines rebuilds lineWaiting, and gives the hosts of a snapshot
// written before FormatV5 the agent's line as their source.
func (s *State) reindexLines() {
	s.lineWaiting = map[string]bool{}
	for id, h := range s.Hosts {
		if h.FleetLock {
			continue
		}
		if h.LineSource == "" && h.KernelLine != "" {
			h.AgentLine, h.LineSource = h.KernelLine, LineSourceAgent
		}
		if h.PendingLine != "" {
			s.lineWaiting[id] = true
		}
	}
}

// lineRuleView counts the hosts dc's line rule selects and those that
// follow it.
func (s *State) lineRuleView(dc *Datacenter) *wire.LineRule {
	if dc.LineRule == nil {
		return nil
	}
	v := &wire.LineRule{Line: dc.LineRule.Line, Pct: dc.LineRule.Pct}
	for _, h := range s.byDC[dc.Name] {
		if h.FleetLock || !InLineRule(h.ID, dc.LineRule.Pct) {
			continue
		}
		v.Hosts++
		if h.KernelLine == dc.LineRule.Line {
			v.Following++
		}
	}
	return v
}

// LineCounts counts agent hosts per datacenter per kernel line followed
// ("none" for a host without one).
func (s *State) LineCounts() map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, h := range s.Hosts {
		if h.FleetLock {
			continue
		}
		if out[h.Datacenter] == nil {
			out[h.Datacenter] = map[string]int{}
		}
		out[h.Datacenter][orDefault(h.KernelLine, "none")]++
	}
	return out
}
