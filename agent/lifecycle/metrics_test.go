package lifecycle

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kroll-dev/kroll/pkg/wire"
)

// TestPhaseMetrics: the current phase is 1, every other 0, and the time
// it was entered is kroll_agent_phase_timestamp_seconds.
func TestPhaseMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.setPhase(wire.PhaseDraining, time.Unix(1767225600, 500_000_000))
	want := `# HELP kroll_agent_phase_timestamp_seconds Unix time the current phase was entered.
# TYPE kroll_agent_phase_timestamp_seconds gauge
kroll_agent_phase_timestamp_seconds 1.7672256005e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kroll_agent_phase_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
	for _, p := range phases {
		want := 0.0
		if p == wire.PhaseDraining {
			want = 1
		}
		if got := testutil.ToFloat64(m.Phase.WithLabelValues(p)); got != want {
			t.Errorf("kroll_agent_phase{phase=%q} = %v, want %v", p, got, want)
		}
	}
}
