package lifecycle

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// phases are the values of the phase label.
var phases = []string{
	wire.PhaseIdle, wire.PhaseStaging, wire.PhaseStaged, wire.PhaseInstalling, wire.PhaseWaitingSlot, wire.PhaseDraining,
	wire.PhaseRebooting, wire.PhaseVerifying, wire.PhaseHealthy, wire.PhaseStagingFailed, wire.PhaseInstallFailed,
	wire.PhaseDrainTimeout, wire.PhaseWrongKernel, wire.PhaseUnhealthy, wire.PhaseRollback, wire.PhaseFailed,
}

// Metrics are the lifecycle's Prometheus metrics.
type Metrics struct {
	// Phase is 1 for the current phase, 0 for the others.
	Phase *prometheus.GaugeVec
	// PhaseTimestamp is the Unix time the current phase was entered (time
	// in phase = time() - kroll_agent_phase_timestamp_seconds).
	PhaseTimestamp prometheus.Gauge
	// StageSeconds observes successful staging durations.
	StageSeconds prometheus.Histogram
	// StageFailures counts failed staging attempts.
	StageFailures prometheus.Counter
	// InstallSeconds observes successful install durations.
	InstallSeconds prometheus.Histogram
	// InstallFailures counts failed install attempts.
	InstallFailures prometheus.Counter
	// DrainConnections is the last count of established connections to
	// anycast addresses seen while draining.
	DrainConnections prometheus.Gauge
	// Reboots counts boots started, by method.
	Reboots *prometheus.CounterVec
	// SlotDenials counts denied slot requests, by kind.
	SlotDenials *prometheus.CounterVec
	// Heartbeats counts heartbeats, by result (ok, error).
	Heartbeats *prometheus.CounterVec
	// GuardRefusals counts reboots the datacenter-local guard refused.
	GuardRefusals prometheus.Counter

	mu sync.Mutex
}

// NewMetrics creates the metrics and registers them with reg (unless nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Phase: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kroll_agent_phase", Help: "1 for the agent's current lifecycle phase."}, []string{"phase"}),
		PhaseTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kroll_agent_phase_timestamp_seconds",
			Help: "Unix time the current phase was entered."}),
		StageSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kroll_agent_stage_duration_seconds",
			Help: "Duration of successful stagings (download, verify, unpack).", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		StageFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kroll_agent_stage_failures_total", Help: "Failed staging attempts."}),
		InstallSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "kroll_agent_install_duration_seconds",
			Help: "Duration of successful kernel installs (dpkg, or a bundle's modules, depmod and initramfs).", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		InstallFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kroll_agent_install_failures_total", Help: "Failed kernel install attempts."}),
		DrainConnections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kroll_agent_drain_connections",
			Help: "Established TCP connections to anycast addresses at the end of the last drain wait."}),
		Reboots:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kroll_agent_reboots_total", Help: "Boots started, by method (kexec, reboot, dry-run)."}, []string{"method"}),
		SlotDenials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kroll_agent_slot_denials_total", Help: "Denied slot requests, by kind."}, []string{"kind"}),
		Heartbeats:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kroll_agent_heartbeats_total", Help: "Heartbeats sent, by result (ok, error)."}, []string{"result"}),
		GuardRefusals: prometheus.NewCounter(prometheus.CounterOpts{Name: "kroll_agent_guard_refusals_total",
			Help: "Reboots refused by the datacenter-local guard (the host's gossip view showed the datacenter at its limit) after a slot was granted."}),
	}
	if reg != nil {
		reg.MustRegister(m.Phase, m.PhaseTimestamp, m.StageSeconds, m.StageFailures, m.InstallSeconds, m.InstallFailures, m.DrainConnections, m.Reboots, m.SlotDenials, m.Heartbeats, m.GuardRefusals)
	}
	return m
}

func (m *Metrics) setPhase(phase string, since time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range phases {
		v := 0.0
		if p == phase {
			v = 1
		}
		m.Phase.WithLabelValues(p).Set(v)
	}
	m.PhaseTimestamp.Set(float64(since.UnixNano()) / 1e9)
}
