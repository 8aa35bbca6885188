package fsm

import (
	"slices"
	"strconv"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// internTable shares the values many hosts hold alike (datacenter, kernel
// line and kernel, phase, line fields, policy states, gossip views), so
// that the host table holds one copy of each instead of one per host: a
// smaller heap with fewer objects for the garbage collector to mark.
// It belongs to its State, is derived (rebuilt by reindex on restore)
// and changes no value, only which copy of an equal value a host points
// to. Interned values are shared: they are never modified in place (a
// host's field is replaced, never written through).
type internTable struct {
	strs     map[string]string
	views    map[wire.DCView]*wire.DCView
	policies map[string][]wire.PolicyStatus
	key      []byte // scratch for policy keys
}

// maxInterned bounds each of the table's maps: values no host holds any
// more stay until the map is this big, then it starts over (what the
// hosts hold stays valid; only later equal values get a new copy).
const maxInterned = 1 << 16

// newInternTable returns an empty table.
func newInternTable() *internTable {
	return &internTable{
		strs:     map[string]string{},
		views:    map[wire.DCView]*wire.DCView{},
		policies: map[string][]wire.PolicyStatus{},
	}
}

// str returns the table's copy of v.
func (t *internTable) str(v string) string {
	if v == "" {
		return ""
	}
	if c, ok := t.strs[v]; ok {
		return c
	}
	if len(t.strs) >= maxInterned {
		clear(t.strs)
	}
	t.strs[v] = v
	return v
}

// view returns the table's copy of *v (nil for nil).
func (t *internTable) view(v *wire.DCView) *wire.DCView {
	if v == nil {
		return nil
	}
	if c, ok := t.views[*v]; ok {
		return c
	}
	if len(t.views) >= maxInterned {
		clear(t.views)
	}
	c := *v
	t.views[c] = &c
	return &c
}

// policyStates returns the table's copy of ps (a slice of exactly its
// length, so an append never writes into the shared array). nil and
// empty stay as they are: the JSON encoding tells them apart.
func (t *internTable) policyStates(ps []wire.PolicyStatus) []wire.PolicyStatus {
	if len(ps) == 0 {
		return ps
	}
	k := t.key[:0]
	for _, p := range ps {
		k = strconv.AppendQuote(k, p.ID)
		k = strconv.AppendInt(k, p.Version, 10)
		k = strconv.AppendQuote(k, string(p.State))
		k = strconv.AppendQuote(k, p.Detail)
	}
	t.key = k
	if c, ok := t.policies[string(k)]; ok {
		return c
	}
	if len(t.policies) >= maxInterned {
		clear(t.policies)
	}
	c := make([]wire.PolicyStatus, len(ps))
	for i, p := range ps {
		c[i] = wire.PolicyStatus{ID: t.str(p.ID), Version: p.Version, State: wire.PolicyState(t.str(string(p.State))), Detail: t.str(p.Detail)}
	}
	t.policies[string(k)] = c
	return slices.Clip(c)
}

// intern returns the State's interned copy of v.
func (s *State) intern(v string) string {
	if s.interned == nil {
		s.interned = newInternTable()
	}
	return s.interned.str(v)
}

// hostShared is a host's fields that internHost shares, as they were.
type hostShared struct {
	datacenter, kernelLine, kernel, phase string
	lines                                 HostLines
	policies                              []wire.PolicyStatus
	view                                  *wire.DCView
}

// sharedOf returns h's shared fields.
func sharedOf(h *Host) hostShared {
	return hostShared{datacenter: h.Datacenter, kernelLine: h.KernelLine, kernel: h.Kernel, phase: h.Phase,
		lines: h.HostLines, policies: h.Policies, view: h.View}
}

// keep returns was when v equals it (a host's field that did not change
// keeps its shared copy, no table lookup), else the table's copy of v.
func (t *internTable) keep(was, v string) string {
	if v == was {
		return was
	}
	return t.str(v)
}

// internHost points h's shared fields at the table's copies (equal
// values: nothing h encodes or answers changes). was is what they were
// before the command changed them (sharedOf; the zero value when
// unknown): a field equal to what it was keeps it.
func (s *State) internHost(h *Host, was hostShared) {
	if s.interned == nil {
		s.interned = newInternTable()
	}
	t := s.interned
	h.Datacenter = t.keep(was.datacenter, h.Datacenter)
	h.KernelLine = t.keep(was.kernelLine, h.KernelLine)
	h.LineSource = t.keep(was.lines.LineSource, h.LineSource)
	h.AgentLine = t.keep(was.lines.AgentLine, h.AgentLine)
	h.OperatorLine = t.keep(was.lines.OperatorLine, h.OperatorLine)
	h.FollowedLine = t.keep(was.lines.FollowedLine, h.FollowedLine)
	h.PendingLine = t.keep(was.lines.PendingLine, h.PendingLine)
	h.LineWait = t.keep(was.lines.LineWait, h.LineWait)
	h.Kernel = t.keep(was.kernel, h.Kernel)
	h.Phase = t.keep(was.phase, h.Phase)
	if was.policies != nil && h.Policies != nil && slices.Equal(was.policies, h.Policies) {
		h.Policies = was.policies
	} else {
		h.Policies = t.policyStates(h.Policies)
	}
	if was.view != nil && h.View != nil && *was.view == *h.View {
		h.View = was.view
	} else {
		h.View = t.view(h.View)
	}
}
