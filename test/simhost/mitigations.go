package simhost

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/kroll-dev/kroll/agent/mitigate"
	"github.com/kroll-dev/kroll/pkg/kversion"
	"github.com/kroll-dev/kroll/pkg/policy"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// Mitigations is a SIMULATED mitigation manager (policysync.Manager): it
// keeps accepted policies and retirements in memory and reports them in
// force — enforcing or auditing by mode, retired once the simulated
// kernel contains the fix. The bpf-lsm side is proven in qemu by
// agent/mitigate.
type Mitigations struct {
	h       *Host
	mu      sync.Mutex
	pols    map[string]policy.Verified
	retired map[string]int64
}

// NewMitigations returns the simulated mitigations of h.
func NewMitigations(h *Host) *Mitigations {
	return &Mitigations{h: h, pols: map[string]policy.Verified{}, retired: map[string]int64{}}
}

// state is a policy's state on the running simulated kernel.
func (m *Mitigations) state(p policy.Policy) wire.PolicyState {
	m.h.mu.Lock()
	up := m.h.upstream
	m.h.mu.Unlock()
	if v, err := kversion.Parse(up); err == nil {
		if fixed, err := p.Fixed(v); err == nil && fixed {
			return wire.PolicyRetired
		}
	}
	if p.Mode == policy.ModeEnforce {
		return wire.PolicyEnforcing
	}
	return wire.PolicyAuditing
}

// check is Check without the lock.
func (m *Mitigations) check(p policy.Policy) error {
	if r, ok := m.retired[p.ID]; ok && p.Version <= r {
		return fmt.Errorf("%w: %w: version %d <= %d", mitigate.ErrRejected, mitigate.ErrRetired, p.Version, r)
	}
	if old, ok := m.pols[p.ID]; ok {
		if err := p.Supersedes(old.Policy()); err != nil {
			return fmt.Errorf("%w: %w", mitigate.ErrRejected, err)
		}
	}
	return nil
}

// Check implements policysync.Manager.
func (m *Mitigations) Check(v policy.Verified) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(v.Policy())
}

// ApplyVerified accepts the verified policies (newer, not retired) and
// reports their state.
func (m *Mitigations) ApplyVerified(_ context.Context, vs []policy.Verified) ([]mitigate.Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []mitigate.Status
	for _, v := range vs {
		p := v.Policy()
		st := mitigate.Status{ID: p.ID, Version: p.Version, Kind: string(p.Kind), Mode: string(p.Mode)}
		if old, ok := m.pols[p.ID]; !ok || old.Policy().Version != p.Version {
			if err := m.check(p); err != nil {
				st.State, st.Detail = wire.PolicyRejected, err.Error()
				out = append(out, st)
				continue
			}
		}
		m.pols[p.ID] = v
		st.State = m.state(p)
		out = append(out, st)
	}
	return out, nil
}

// Retire forgets a policy and refuses its versions up to version.
func (m *Mitigations) Retire(_ context.Context, id string, version int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.retired[id] = max(m.retired[id], version)
	if v, ok := m.pols[id]; ok && v.Policy().Version <= m.retired[id] {
		delete(m.pols, id)
	}
	return nil
}

// Documents returns the accepted policies.
func (m *Mitigations) Documents() ([]policy.Verified, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]policy.Verified, 0, len(m.pols))
	for _, v := range m.pols {
		out = append(out, v)
	}
	return out, nil
}

// Statuses reports the policies for heartbeats (lifecycle.Config.Policies).
func (m *Mitigations) Statuses(context.Context) ([]wire.PolicyStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sts []mitigate.Status
	for id, v := range m.pols {
		p := v.Policy()
		sts = append(sts, mitigate.Status{ID: id, Version: p.Version, State: m.state(p)})
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].ID < sts[j].ID })
	return mitigate.WireStatus(sts), nil
}
