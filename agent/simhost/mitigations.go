package simhost

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Mitigations is a SIMULATED mitigation manager (policysync.Manager): it
// keeps accepted policies in memory and reports them in force — enforcing
// or auditing by mode, retired once the simulated kernel contains the fix.
// The bpf-lsm side is proven in qemu by agent/mitigate.
type Mitigations struct {
	h    *Host
	mu   sync.Mutex
	docs map[string]mitigate.SignedPolicy
	pols map[string]policy.Policy
}

// NewMitigations returns the simulated mitigations of h.
func NewMitigations(h *Host) *Mitigations {
	return &Mitigations{h: h, docs: map[string]mitigate.SignedPolicy{}, pols: map[string]policy.Policy{}}
}

// state is a policy's state on the running simulated kernel.
func (m *Mitigations) state(p policy.Policy) string {
	m.h.mu.Lock()
	up := m.h.upstream
	m.h.mu.Unlock()
	if v, err := kversion.Parse(up); err == nil {
		if fixed, err := p.Fixed(v); err == nil && fixed {
			return mitigate.StateRetired
		}
	}
	if p.Mode == policy.ModeEnforce {
		return mitigate.StateEnforcing
	}
	return mitigate.StateAuditing
}

// Apply accepts the documents (their signatures were checked by the
// caller, policysync) and reports their state.
func (m *Mitigations) Apply(_ context.Context, docs []mitigate.SignedPolicy) ([]mitigate.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []mitigate.Status
	for _, d := range docs {
		p, err := policy.Decode(d.Document, time.Time{})
		if err != nil {
			out = append(out, mitigate.Status{State: "rejected: " + err.Error()})
			continue
		}
		m.docs[p.ID], m.pols[p.ID] = d, p
		out = append(out, mitigate.Status{ID: p.ID, Version: p.Version, Kind: string(p.Kind), Mode: string(p.Mode), State: m.state(p)})
	}
	return out, nil
}

// Remove forgets a policy.
func (m *Mitigations) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.docs[id]; !ok {
		return mitigate.ErrNotInstalled
	}
	delete(m.docs, id)
	delete(m.pols, id)
	return nil
}

// Documents returns the accepted documents.
func (m *Mitigations) Documents() ([]mitigate.SignedPolicy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]mitigate.SignedPolicy, 0, len(m.docs))
	for _, d := range m.docs {
		out = append(out, d)
	}
	return out, nil
}

// Statuses reports the policies for heartbeats (lifecycle.Config.Policies).
func (m *Mitigations) Statuses(context.Context) ([]wire.PolicyStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sts []mitigate.Status
	for id, p := range m.pols {
		sts = append(sts, mitigate.Status{ID: id, Version: p.Version, State: m.state(p)})
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].ID < sts[j].ID })
	return mitigate.WireStatus(sts), nil
}
