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

// internHost points h's shared fields at the table's copies (equal
// values: nothing h encodes or answers changes).
func (s *State) internHost(h *Host) {
	if s.interned == nil {
		s.interned = newInternTable()
	}
	t := s.interned
	h.Datacenter = t.str(h.Datacenter)
	h.KernelLine = t.str(h.KernelLine)
	h.LineSource = t.str(h.LineSource)
	h.AgentLine = t.str(h.AgentLine)
	h.OperatorLine = t.str(h.OperatorLine)
	h.FollowedLine = t.str(h.FollowedLine)
	h.PendingLine = t.str(h.PendingLine)
	h.LineWait = t.str(h.LineWait)
	h.Kernel = t.str(h.Kernel)
	h.Phase = t.str(h.Phase)
	h.Policies = t.policyStates(h.Policies)
	h.View = t.view(h.View)
}
