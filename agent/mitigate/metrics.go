package mitigate

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxExeLabels caps the distinct exe label values per policy of
// kroll_mitigation_events_total; events of further executables are
// counted under exe="other".
const MaxExeLabels = 100

// Metrics are the Prometheus metrics of mitigation events.
type Metrics struct {
	events *prometheus.CounterVec

	mu   sync.Mutex
	exes map[string]map[string]bool // policy → exe labels in use
}

// NewMetrics creates the metrics and registers them with reg (unless reg
// is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kroll_mitigation_events_total",
			Help: "Operations matched by a bpf-lsm mitigation policy, by policy, verdict (allowed, audited, denied) and executable (major:minor:inode, at most 100 per policy, then \"other\").",
		}, []string{"policy", "verdict", "exe"}),
		exes: make(map[string]map[string]bool),
	}
	if reg != nil {
		reg.MustRegister(m.events)
	}
	return m
}

// exeLabel returns exe, or "other" once policy has MaxExeLabels others.
func (m *Metrics) exeLabel(policy, exe string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.exes[policy]
	if set == nil {
		set = make(map[string]bool)
		m.exes[policy] = set
	}
	if set[exe] {
		return exe
	}
	if len(set) >= MaxExeLabels {
		return "other"
	}
	set[exe] = true
	return exe
}

// countEvent increments the event counter.
func (m *Metrics) countEvent(policy, verdict, exe string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(policy, verdict, m.exeLabel(policy, exe)).Inc()
}
